//! A TCP fault proxy between the service and one of its peers (Postgres, RabbitMQ), so a chaos run or a
//! test can cut the service off from that peer, or stall it, without stopping the shared server for
//! everyone else.
//!
//! Faults, each for every connection through the proxy:
//! - [`TcpProxy::cut`]: close every connection and refuse new ones (a peer that is down);
//! - [`TcpProxy::blackhole`]: accept, forward nothing, answer nothing, close nothing (a network partition);
//!   [`TcpProxy::restore`] lets what was held through, as TCP retransmission would;
//! - [`TcpProxy::freeze_open`]: the connections open now never forward another byte and are never closed,
//!   on either side, even when the client closes its end; new connections pass (a failover behind the same
//!   address, lost NAT or load-balancer state);
//! - [`TcpProxy::delay`] and [`TcpProxy::limit_bandwidth`]: slow links.
//!
//! What it cannot do: stop the kernel from acknowledging. Both peers keep talking TCP to the proxy's
//! sockets, so TCP keepalives and `tcp_user_timeout` of either peer never fire on a frozen connection;
//! only deadlines the application keeps itself (queries, heartbeats, confirms) notice it. Its own tests
//! are `tests/integration/reliability_proxy.rs`.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// The faults in force; connections watch it.
#[derive(Clone, Debug, Default)]
struct Faults {
    /// New connections are closed at once (set by `cut`).
    refusing: bool,
    /// Nothing is forwarded, nothing closed (set by `blackhole`).
    blackhole: bool,
    /// Held before each chunk is forwarded.
    delay: Duration,
    /// Bytes per second, per direction of each connection.
    bandwidth: Option<u64>,
    /// Bumped by every cut: connections born before it close.
    cut_generation: u64,
    /// Bumped by every freeze: connections born before it stop for good.
    freeze_epoch: u64,
}

/// What a connection was born into.
#[derive(Clone, Copy)]
struct Born {
    cut_generation: u64,
    freeze_epoch: u64,
}

/// A running proxy; stops (and closes every connection, frozen ones too) when dropped.
pub struct TcpProxy {
    pub addr: SocketAddr,
    faults: watch::Sender<Faults>,
    open: Arc<AtomicUsize>,
    /// Ends every connection, frozen ones included, when the proxy is dropped.
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<TcpProxy> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let (faults, _) = watch::channel(Faults::default());
        let open = Arc::new(AtomicUsize::new(0));
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(accept_loop(listener, upstream, faults.clone(), open.clone(), shutdown.clone()));
        Ok(TcpProxy { addr, faults, open, shutdown, task })
    }

    /// Closes every proxied connection (frozen ones excepted) and refuses new ones until
    /// [`TcpProxy::restore`].
    pub fn cut(&self) {
        self.faults.send_modify(|f| {
            f.refusing = true;
            f.cut_generation += 1;
        });
    }

    /// Forwards nothing on any connection, old or new, and closes none, until [`TcpProxy::restore`]; new
    /// connections are accepted and held. What was sent meanwhile is delivered after the restore.
    pub fn blackhole(&self) {
        self.faults.send_modify(|f| f.blackhole = true);
    }

    /// Every connection open now stops forwarding forever without being closed (until the proxy is
    /// dropped); connections opened afterwards pass. Returns how many connections it froze.
    pub fn freeze_open(&self) -> usize {
        let open = self.open.load(Ordering::SeqCst);
        self.faults.send_modify(|f| f.freeze_epoch += 1);
        open
    }

    /// Holds each chunk for `delay` before forwarding it (zero: no delay).
    pub fn delay(&self, delay: Duration) {
        self.faults.send_modify(|f| f.delay = delay);
    }

    /// Forwards at most `bytes_per_sec` in each direction of each connection.
    pub fn limit_bandwidth(&self, bytes_per_sec: u64) {
        self.faults.send_modify(|f| f.bandwidth = Some(bytes_per_sec.max(1)));
    }

    /// Back to a plain proxy: accepts again, ends a blackhole, drops delay and bandwidth limit. Frozen
    /// connections stay frozen.
    pub fn restore(&self) {
        self.faults.send_modify(|f| {
            f.refusing = false;
            f.blackhole = false;
            f.delay = Duration::ZERO;
            f.bandwidth = None;
        });
    }

    /// Connections through the proxy now, frozen ones included.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.shutdown.cancel();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    faults: watch::Sender<Faults>,
    open: Arc<AtomicUsize>,
    shutdown: CancellationToken,
) {
    loop {
        let client = match listener.accept().await {
            Ok((client, _)) => client,
            Err(error) => {
                // Out of descriptors and the like: pause instead of spinning or giving up.
                tracing::warn!(%error, "fault proxy: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let rx = faults.subscribe();
        let born = {
            let now = rx.borrow();
            if now.refusing {
                drop(client);
                continue;
            }
            Born { cut_generation: now.cut_generation, freeze_epoch: now.freeze_epoch }
        };
        let counted = Counted::new(&open);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let _counted = counted;
            tokio::select! {
                _ = connection(client, upstream, rx, born) => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

/// Counts a connection while it lives.
struct Counted(Arc<AtomicUsize>);

impl Counted {
    fn new(open: &Arc<AtomicUsize>) -> Counted {
        open.fetch_add(1, Ordering::SeqCst);
        Counted(open.clone())
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn connection(client: TcpStream, upstream: SocketAddr, mut faults: watch::Receiver<Faults>, born: Born) {
    // A blackhole holds a new connection before the upstream one exists, as a lost SYN would.
    if passable(&mut faults, born).await.is_none() {
        return;
    }
    let server = tokio::select! {
        server = TcpStream::connect(upstream) => match server { Ok(server) => server, Err(_) => return },
        _ = cut(faults.clone(), born) => return,
    };
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pump(client_read, server_write, faults.clone(), born),
        pump(server_read, client_write, faults.clone(), born),
    );
}

/// Forwards one direction chunk by chunk, applying the faults in force before and after each read.
async fn pump(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut faults: watch::Receiver<Faults>, born: Born) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let Some(now) = passable(&mut faults, born).await else { return };
        // Small chunks under a bandwidth limit, so the rate holds within a tenth of a second.
        let chunk = now.bandwidth.map_or(buf.len(), |bps| (bps / 10).clamp(1, buf.len() as u64) as usize);
        let n = tokio::select! {
            read = from.read(&mut buf[..chunk]) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = cut(faults.clone(), born) => return,
        };
        let now = faults.borrow().clone();
        let mut hold = now.delay;
        if let Some(bps) = now.bandwidth {
            hold += Duration::from_secs_f64(n as f64 / bps as f64);
        }
        if !hold.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(hold) => {}
                _ = cut(faults.clone(), born) => return,
            }
        }
        // A freeze or blackhole that began while the chunk was read or held keeps it.
        if passable(&mut faults, born).await.is_none() {
            return;
        }
        tokio::select! {
            written = to.write_all(&buf[..n]) => if written.is_err() { return },
            _ = cut(faults.clone(), born) => return,
        }
    }
    // The sender closed its side: pass the half-close on, unless the link is frozen by now.
    if passable(&mut faults, born).await.is_some() {
        if let Err(error) = to.shutdown().await {
            tracing::debug!(%error, "fault proxy: half-close");
        }
    }
}

/// Waits until this connection may forward: `None` when it was cut; never returns when it is frozen.
async fn passable(faults: &mut watch::Receiver<Faults>, born: Born) -> Option<Faults> {
    loop {
        let now = faults.borrow_and_update().clone();
        if now.freeze_epoch != born.freeze_epoch {
            // Frozen for good: neither forward nor close; the proxy's drop ends the task.
            return std::future::pending().await;
        }
        if now.cut_generation != born.cut_generation {
            return None;
        }
        if !now.blackhole {
            return Some(now);
        }
        if faults.changed().await.is_err() {
            return None;
        }
    }
}

/// Resolves when this connection is cut (never for a frozen one).
async fn cut(mut faults: watch::Receiver<Faults>, born: Born) {
    loop {
        {
            let now = faults.borrow_and_update();
            if now.cut_generation != born.cut_generation && now.freeze_epoch == born.freeze_epoch {
                return;
            }
        }
        if faults.changed().await.is_err() {
            return;
        }
    }
}
