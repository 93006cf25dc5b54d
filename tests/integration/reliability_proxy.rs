//! The fault proxy itself (src/chaos/proxy.rs), against an echo server: what each fault does to
//! connections open at the time and to new ones, so the hang tests can rely on it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::eventually;
use entrasync::chaos::proxy::TcpProxy;

/// An echo server; the counter says how many of its connections ended (the proxy closed its side).
async fn echo_server() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind echo server");
    let addr = listener.local_addr().expect("echo address");
    let ended = Arc::new(AtomicUsize::new(0));
    let counter = ended.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let ended = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if socket.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    }
                }
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, ended)
}

/// Sends `message` and waits up to `within` for its echo: `None` when it did not come back in time.
async fn echo(stream: &mut TcpStream, message: &[u8], within: Duration) -> Option<Vec<u8>> {
    stream.write_all(message).await.ok()?;
    read_echo(stream, message.len(), within).await
}

async fn read_echo(stream: &mut TcpStream, len: usize, within: Duration) -> Option<Vec<u8>> {
    let mut back = vec![0u8; len];
    match tokio::time::timeout(within, stream.read_exact(&mut back)).await {
        Ok(Ok(_)) => Some(back),
        _ => None,
    }
}

/// Whether the peer closed the stream within `within` (a read returns end of file or an error).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut byte = [0u8; 1];
    matches!(tokio::time::timeout(within, stream.read(&mut byte)).await, Ok(Ok(0) | Err(_)))
}

const QUICK: Duration = Duration::from_secs(10);
/// How long a stalled connection is watched for a byte or a close that must not come.
const QUIET: Duration = Duration::from_millis(800);

#[tokio::test]
async fn a_cut_closes_every_connection_and_refuses_new_ones_until_restored() {
    let (upstream, ended) = echo_server().await;
    let proxy = TcpProxy::start(upstream).await.expect("start the fault proxy");
    let mut old = TcpStream::connect(proxy.addr).await.unwrap();
    assert_eq!(echo(&mut old, b"ping", QUICK).await.as_deref(), Some(&b"ping"[..]));

    proxy.cut();
    assert!(closed_within(&mut old, QUICK).await, "expected the open connection to be closed by the cut");
    assert!(eventually(QUICK, || async { ended.load(Ordering::SeqCst) == 1 }).await, "upstream side closed too");
    let mut refused = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(closed_within(&mut refused, QUICK).await, "expected a new connection to be closed while cut");

    proxy.restore();
    let mut new = TcpStream::connect(proxy.addr).await.unwrap();
    assert_eq!(echo(&mut new, b"again", QUICK).await.as_deref(), Some(&b"again"[..]), "passes after restore");
}

#[tokio::test]
async fn a_blackhole_holds_old_and_new_connections_open_silently_and_delivers_after_restore() {
    let (upstream, ended) = echo_server().await;
    let proxy = TcpProxy::start(upstream).await.expect("start the fault proxy");
    let mut old = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(echo(&mut old, b"before", QUICK).await.is_some());

    proxy.blackhole();
    assert_eq!(echo(&mut old, b"held-1", QUIET).await, None, "expected no answer through a blackhole");
    let mut new = TcpStream::connect(proxy.addr).await.expect("a blackhole still accepts");
    assert_eq!(echo(&mut new, b"held-2", QUIET).await, None, "expected no answer on a new connection either");
    assert!(!closed_within(&mut old, QUIET).await, "expected the open connection to stay open");
    assert_eq!(proxy.open_connections(), 2);
    assert_eq!(ended.load(Ordering::SeqCst), 0, "expected the upstream side to stay open");

    proxy.restore();
    assert_eq!(read_echo(&mut old, 6, QUICK).await.as_deref(), Some(&b"held-1"[..]), "held data delivered");
    assert_eq!(read_echo(&mut new, 6, QUICK).await.as_deref(), Some(&b"held-2"[..]), "held connection delivered");
    assert_eq!(echo(&mut old, b"after", QUICK).await.as_deref(), Some(&b"after"[..]));
}

#[tokio::test]
async fn freeze_open_stops_the_open_connections_forever_without_closing_them_while_new_ones_pass() {
    let (upstream, ended) = echo_server().await;
    let proxy = TcpProxy::start(upstream).await.expect("start the fault proxy");
    let mut frozen = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(echo(&mut frozen, b"before", QUICK).await.is_some());
    let mut frozen_then_closed = TcpStream::connect(proxy.addr).await.unwrap();
    assert!(echo(&mut frozen_then_closed, b"before", QUICK).await.is_some());

    assert_eq!(proxy.freeze_open(), 2, "expected both open connections to be frozen");
    let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
    assert_eq!(echo(&mut fresh, b"fresh", QUICK).await.as_deref(), Some(&b"fresh"[..]), "new connections pass");
    assert_eq!(echo(&mut frozen, b"lost", QUIET).await, None, "expected nothing through a frozen connection");

    // A restore lifts the other faults, never a freeze; and the client closing its end reaches nobody.
    proxy.restore();
    drop(frozen_then_closed);
    assert_eq!(read_echo(&mut frozen, 4, QUIET).await, None, "expected the frozen connection to stay silent");
    assert!(!closed_within(&mut frozen, QUIET).await, "expected the frozen connection to stay open");
    assert_eq!(ended.load(Ordering::SeqCst), 0, "expected no upstream side of a frozen connection to be closed");
    assert_eq!(proxy.open_connections(), 3);

    // A second freeze takes the connections that passed the first.
    assert_eq!(proxy.freeze_open(), 3);
    assert_eq!(echo(&mut fresh, b"lost", QUIET).await, None);

    // Dropping the proxy ends everything, frozen connections included.
    drop(proxy);
    assert!(closed_within(&mut frozen, QUICK).await, "expected the proxy's drop to close frozen connections");
    assert!(eventually(QUICK, || async { ended.load(Ordering::SeqCst) == 3 }).await, "upstream sides closed");
}

#[tokio::test]
async fn a_delay_holds_each_chunk_and_a_bandwidth_limit_slows_a_transfer_without_changing_it() {
    let (upstream, _) = echo_server().await;
    let proxy = TcpProxy::start(upstream).await.expect("start the fault proxy");
    let mut stream = TcpStream::connect(proxy.addr).await.unwrap();

    proxy.delay(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(echo(&mut stream, b"slow", QUICK).await.as_deref(), Some(&b"slow"[..]));
    // Held once on the way there and once on the way back.
    assert!(started.elapsed() >= Duration::from_millis(600), "expected ≥ 600 ms, took {:?}", started.elapsed());

    proxy.restore();
    proxy.limit_bandwidth(40_000);
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    let started = Instant::now();
    let (mut read, mut write) = stream.split();
    let send = async {
        write.write_all(&payload).await.unwrap();
    };
    let receive = async {
        let mut back = vec![0u8; payload.len()];
        tokio::time::timeout(Duration::from_secs(30), read.read_exact(&mut back)).await.unwrap().unwrap();
        back
    };
    let ((), back) = tokio::join!(send, receive);
    assert!(back == payload, "expected the bytes to arrive unchanged");
    // 60 kB at 40 kB/s each way (pipelined): at least 1.5 s.
    assert!(started.elapsed() >= Duration::from_millis(1_400), "expected ≥ 1.4 s, took {:?}", started.elapsed());

    proxy.restore();
    let started = Instant::now();
    assert!(echo(&mut stream, &payload, QUICK).await.is_some());
    eprintln!("unlimited 60 kB echo: {:?}", started.elapsed());
}
