//! A TCP fault proxy between the service and one of its peers (Postgres, RabbitMQ), so a chaos run
//! can break the service's connections without touching the shared servers: cut every connection and
//! refuse new ones, delay each chunk, stall everything with the sockets left open, freeze the
//! connections open now forever (a peer that vanished without closing), or limit the bandwidth.
//!
//! The method names are the test harness's (`tests/support/proxy.rs`): `cut`, `restore`, `delay`,
//! `blackhole`, `freeze_open`, `limit_bandwidth`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Bytes read from one side before they are forwarded to the other.
const CHUNK: usize = 16 * 1024;

/// What the proxy does with traffic right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Mode {
    /// Connections are closed and new ones refused.
    cut: bool,
    /// New connections are accepted, nothing is forwarded, sockets stay open.
    blackhole: bool,
    /// Connections with a serial below this never forward again (frozen forever).
    frozen_below: u64,
    /// Bumped by every `cut`: live connections close when it changes.
    cut_generation: u64,
}

struct Control {
    mode: watch::Sender<Mode>,
    /// Delay before forwarding each chunk, in microseconds (0: none).
    delay_us: AtomicU64,
    /// Bytes per second and direction of each connection (0: unlimited).
    bandwidth: AtomicU64,
    /// Serial of the next accepted connection.
    next_serial: AtomicU64,
    /// Connections accepted since the proxy started (for reports).
    accepted: AtomicU64,
}

/// A running proxy; stops (and closes every connection) when dropped.
pub struct TcpProxy {
    pub addr: SocketAddr,
    pub upstream: SocketAddr,
    control: Arc<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<TcpProxy> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (mode, _) = watch::channel(Mode::default());
        let control = Arc::new(Control {
            mode,
            delay_us: AtomicU64::new(0),
            bandwidth: AtomicU64::new(0),
            next_serial: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let task = tokio::spawn(accept_loop(listener, upstream, control.clone()));
        Ok(TcpProxy { addr, upstream, control, task })
    }

    /// Closes every proxied connection (frozen ones too) and refuses new ones until [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.control.mode.send_modify(|m| {
            m.cut = true;
            m.cut_generation += 1;
        });
    }

    /// Ends a cut or a blackhole: new connections pass and stalled ones forward again. Frozen
    /// connections stay frozen (their peer is gone for good); delay and bandwidth limit are kept.
    pub fn restore(&self) {
        self.control.mode.send_modify(|m| {
            m.cut = false;
            m.blackhole = false;
        });
    }

    /// Delays every chunk forwarded from now on (`Duration::ZERO`: no delay).
    pub fn delay(&self, per_chunk: Duration) {
        let micros = u64::try_from(per_chunk.as_micros()).unwrap_or(u64::MAX);
        self.control.delay_us.store(micros, Ordering::SeqCst);
    }

    /// Accepts connections but forwards nothing on any connection, keeping every socket open, until
    /// [`TcpProxy::restore`]: a peer that stalls.
    pub fn blackhole(&self) {
        self.control.mode.send_modify(|m| m.blackhole = true);
    }

    /// Every connection open now stops forwarding forever without being closed (a peer that vanished
    /// with no FIN or RST); connections made afterwards pass.
    pub fn freeze_open(&self) {
        let below = self.control.next_serial.load(Ordering::SeqCst);
        self.control.mode.send_modify(|m| m.frozen_below = m.frozen_below.max(below));
    }

    /// Limits each connection to `bytes_per_sec` in each direction (0: unlimited).
    pub fn limit_bandwidth(&self, bytes_per_sec: u64) {
        self.control.bandwidth.store(bytes_per_sec, Ordering::SeqCst);
    }

    /// Connections accepted since the proxy started.
    pub fn accepted(&self) -> u64 {
        self.control.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        // Live connections watch the mode: a cut closes them.
        self.cut();
    }
}

async fn accept_loop(listener: TcpListener, upstream: SocketAddr, control: Arc<Control>) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of descriptors and the like: pause instead of spinning.
                tracing::warn!(%error, "chaos proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if control.mode.borrow().cut {
            drop(client);
            continue;
        }
        control.accepted.fetch_add(1, Ordering::SeqCst);
        let serial = control.next_serial.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(connection(client, upstream, control.clone(), serial));
    }
}

/// One proxied connection: both directions until either side closes or the proxy cuts.
async fn connection(client: TcpStream, upstream: SocketAddr, control: Arc<Control>, serial: u64) {
    let mut modes = control.mode.subscribe();
    let generation = modes.borrow().cut_generation;
    let server = tokio::select! {
        connected = TcpStream::connect(upstream) => match connected {
            Ok(server) => server,
            Err(error) => {
                tracing::debug!(%error, %upstream, "chaos proxy: upstream refused");
                return;
            }
        },
        _ = cut_after(&mut modes, generation) => return,
    };
    // Small writes (protocol handshakes) must not wait for Nagle while the test measures stalls.
    if let Err(error) = client.set_nodelay(true).and_then(|()| server.set_nodelay(true)) {
        tracing::debug!(%error, "chaos proxy: cannot set TCP_NODELAY");
    }
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    let up = pump(client_read, server_write, control.clone(), serial);
    let down = pump(server_read, client_write, control.clone(), serial);
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        _ = cut_after(&mut modes, generation) => {}
    }
}

/// Resolves when a cut happens after `generation` (or the proxy is gone).
async fn cut_after(modes: &mut watch::Receiver<Mode>, generation: u64) {
    loop {
        if modes.borrow_and_update().cut_generation != generation {
            return;
        }
        if modes.changed().await.is_err() {
            return;
        }
    }
}

/// Copies one direction chunk by chunk, honouring blackhole, freeze, delay and bandwidth.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, control: Arc<Control>, serial: u64) {
    let mut modes = control.mode.subscribe();
    let mut buffer = vec![0u8; CHUNK];
    loop {
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        gate(&mut modes, serial).await;
        let delay = control.delay_us.load(Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_micros(delay)).await;
        }
        // The chunk takes as long to pass as the limit allows, before it arrives.
        let bandwidth = control.bandwidth.load(Ordering::SeqCst);
        if bandwidth > 0 {
            tokio::time::sleep(Duration::from_secs_f64(read as f64 / bandwidth as f64)).await;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            break;
        }
    }
    // Pass the half-close on, as the peer would see it.
    if let Err(error) = to.shutdown().await {
        tracing::debug!(%error, "chaos proxy: half-close");
    }
}

/// Waits while the proxy is blackholed; forever when this connection is frozen.
async fn gate(modes: &mut watch::Receiver<Mode>, serial: u64) {
    loop {
        let mode = *modes.borrow_and_update();
        if serial < mode.frozen_below {
            std::future::pending::<()>().await;
        }
        if !mode.blackhole {
            return;
        }
        if modes.changed().await.is_err() {
            // The proxy is gone: nothing will ever be forwarded again.
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An echo server on a free port.
    async fn echo() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = socket.split();
                    tokio::io::copy(&mut r, &mut w).await.ok();
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> bool {
        if stream.write_all(b"ping").await.is_err() {
            return false;
        }
        let mut answer = [0u8; 4];
        matches!(tokio::time::timeout(within, stream.read_exact(&mut answer)).await, Ok(Ok(_))) && &answer == b"ping"
    }

    #[tokio::test]
    async fn cut_closes_and_refuses_restore_lets_through() {
        let proxy = TcpProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(round_trip(&mut open, Duration::from_secs(2)).await);
        proxy.cut();
        assert!(!round_trip(&mut open, Duration::from_secs(2)).await, "a cut connection still answers");
        let mut refused = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(!round_trip(&mut refused, Duration::from_secs(1)).await, "a new connection passed a cut");
        proxy.restore();
        let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(round_trip(&mut fresh, Duration::from_secs(2)).await);
    }

    #[tokio::test]
    async fn blackhole_stalls_open_sockets_until_restore() {
        let proxy = TcpProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(round_trip(&mut open, Duration::from_secs(2)).await);
        proxy.blackhole();
        assert!(!round_trip(&mut open, Duration::from_millis(300)).await, "a blackholed connection answered");
        proxy.restore();
        // The stalled ping arrives after the restore.
        let mut answer = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), open.read_exact(&mut answer)).await.unwrap().unwrap();
        assert_eq!(&answer, b"ping");
    }

    #[tokio::test]
    async fn freeze_open_stops_open_connections_forever_and_lets_new_ones_pass() {
        let proxy = TcpProxy::start(echo().await).await.unwrap();
        let mut open = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(round_trip(&mut open, Duration::from_secs(2)).await);
        proxy.freeze_open();
        proxy.restore();
        assert!(!round_trip(&mut open, Duration::from_millis(300)).await, "a frozen connection answered");
        let mut fresh = TcpStream::connect(proxy.addr).await.unwrap();
        assert!(round_trip(&mut fresh, Duration::from_secs(2)).await, "a new connection is frozen too");
    }

    #[tokio::test]
    async fn delay_and_bandwidth_slow_each_chunk() {
        let proxy = TcpProxy::start(echo().await).await.unwrap();
        proxy.delay(Duration::from_millis(200));
        let mut open = TcpStream::connect(proxy.addr).await.unwrap();
        let started = std::time::Instant::now();
        assert!(round_trip(&mut open, Duration::from_secs(10)).await);
        // Two hops through the proxy (there and back), each delayed.
        assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
        proxy.delay(Duration::ZERO);
        // 4 bytes at 20 bytes/s: 200 ms on each hop.
        proxy.limit_bandwidth(20);
        let started = std::time::Instant::now();
        assert!(round_trip(&mut open, Duration::from_secs(10)).await);
        assert!(started.elapsed() >= Duration::from_millis(400), "{:?}", started.elapsed());
    }
}
