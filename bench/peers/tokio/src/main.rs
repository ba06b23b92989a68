//! Tokio peers of cio's benchmark programs (W1-W4, W6) and the W5 echo server.
//!
//!     peer-tokio WORKLOAD [N]      one result line, in cio's format
//!     peer-tokio echo PORT         TCP echo server on 127.0.0.1:PORT
//!
//! Everything runs on Tokio's `current_thread` runtime (one thread, like cio's
//! loop). The code is plain, idiomatic Tokio: spawn + JoinHandle, oneshot and
//! mpsc channels, tokio::time, tokio::sync::Mutex, a task per connection.
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, Mutex};

fn proc_status_kib(key: &str) -> i64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix(key) {
            return rest.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
        }
    }
    0
}

/// Peak RSS in bytes (VmHWM: the figure getrusage's ru_maxrss reports).
fn peak_rss() -> i64 {
    proc_status_kib("VmHWM:") * 1024
}

fn current_rss() -> i64 {
    proc_status_kib("VmRSS:") * 1024
}

fn mib(b: i64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn ns_per(t0: Instant, n: usize) -> f64 {
    t0.elapsed().as_nanos() as f64 / n as f64
}

/// W1: spawn n tasks that return at once, then join them all.
async fn spawn(n: usize) {
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n).map(|_| tokio::spawn(async {})).collect();
    for h in handles {
        h.await.unwrap();
    }
    println!("spawn: {:.1} ns/task, peak RSS {:.1} MiB", ns_per(t0, n), mib(peak_rss()));
}

/// W2: two tasks pass a token n times; each round trip is a fresh oneshot
/// channel (Tokio's one-time future, the counterpart of cio's futures), sent
/// to the ponger with the token.
async fn pingpong(n: usize) {
    let (to_pong, mut inbox) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let pong = tokio::spawn(async move {
        while let Some(reply) = inbox.recv().await {
            let _ = reply.send(());
        }
    });
    let t0 = Instant::now();
    for _ in 0..n {
        let (tx, rx) = oneshot::channel::<()>();
        to_pong.send(tx).unwrap();
        rx.await.unwrap();
    }
    let ns = ns_per(t0, n);
    drop(to_pong);
    pong.await.unwrap();
    println!("pingpong: {:.1} ns/roundtrip", ns);
}

/// W2 variant: two bounded mpsc channels of capacity 1.
async fn pingpong_mpsc(n: usize) {
    let (tx1, mut rx1) = mpsc::channel::<()>(1);
    let (tx2, mut rx2) = mpsc::channel::<()>(1);
    let pong = tokio::spawn(async move {
        while rx1.recv().await.is_some() {
            if tx2.send(()).await.is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    for _ in 0..n {
        tx1.send(()).await.unwrap();
        rx2.recv().await.unwrap();
    }
    let ns = ns_per(t0, n);
    drop(tx1);
    pong.await.unwrap();
    println!("pingpong: {:.1} ns/roundtrip", ns);
}

/// W2 variant: two tokio::sync::Notify (permit-based wake-ups, no payload).
async fn pingpong_notify(n: usize) {
    let ping = std::sync::Arc::new(tokio::sync::Notify::new());
    let pong_n = std::sync::Arc::new(tokio::sync::Notify::new());
    let (p2, q2) = (ping.clone(), pong_n.clone());
    let pong = tokio::spawn(async move {
        for _ in 0..n {
            p2.notified().await;
            q2.notify_one();
        }
    });
    let t0 = Instant::now();
    for _ in 0..n {
        ping.notify_one();
        pong_n.notified().await;
    }
    let ns = ns_per(t0, n);
    pong.await.unwrap();
    println!("pingpong: {:.1} ns/roundtrip", ns);
}

/// W3: n tasks start together and each sleeps 1 s.
async fn sleep_many(n: usize) {
    let rss0 = current_rss();
    let t0 = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|_| tokio::spawn(tokio::time::sleep(Duration::from_secs(1))))
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    let beyond = t0.elapsed().as_nanos() as f64 / 1e6 - 1000.0;
    let peak = peak_rss();
    println!(
        "sleep_many: {} tasks, {:.1} ms beyond 1 s, {:.0} B/task, peak RSS {:.1} MiB",
        n,
        beyond,
        (peak - rss0) as f64 / n as f64,
        mib(peak)
    );
}

/// W4: one task yields n times.
async fn yield_(n: usize) {
    let t0 = Instant::now();
    for _ in 0..n {
        tokio::task::yield_now().await;
    }
    println!("yield: {:.1} ns/yield", ns_per(t0, n));
}

/// W6a: n timers scheduled (delays 1..60 s from the shared LCG), then all
/// cancelled. Tokio's timer is a `Sleep` future: it is registered in the timer
/// wheel when first polled and cancelled by dropping it. (`timers_task`, a
/// task per timer cancelled with JoinHandle::abort, is the other idiom; it is
/// slower.)
async fn timers(n: usize) {
    let mut x: u32 = 12345;
    let t0 = Instant::now();
    let mut sleeps = Vec::with_capacity(n);
    for _ in 0..n {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        let d = Duration::from_millis(1000 + ((x >> 8) % 59000) as u64);
        let mut s = Box::pin(tokio::time::sleep(d));
        PollOnce(s.as_mut()).await;
        sleeps.push(s);
    }
    drop(sleeps);
    println!("timers: {:.1} ns/op", ns_per(t0, n));
}

/// Poll a future once (registering its waker) and complete: what
/// std::future::poll_fn does in Rust >= 1.64, spelled out for Debian's 1.63.
struct PollOnce<'a>(std::pin::Pin<&'a mut tokio::time::Sleep>);

impl std::future::Future for PollOnce<'_> {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        assert!(self.0.as_mut().poll(cx).is_pending());
        std::task::Poll::Ready(())
    }
}

/// W6a, other idiom: a task per timer, cancelled with JoinHandle::abort. Each
/// task is polled once first (a yield of the spawning task) so that its timer
/// is really registered.
async fn timers_task(n: usize) {
    let mut x: u32 = 12345;
    let t0 = Instant::now();
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        let d = Duration::from_millis(1000 + ((x >> 8) % 59000) as u64);
        handles.push(tokio::spawn(async move {
            tokio::time::sleep(d).await;
            eprintln!("timers: a cancelled timer ran");
            std::process::exit(1);
        }));
    }
    tokio::task::yield_now().await; // let every task register its timer
    for h in &handles {
        h.abort();
    }
    tokio::task::yield_now().await; // let the aborted tasks be dropped
    let ns = ns_per(t0, n);
    println!("timers: {:.1} ns/op", ns);
}

/// W6b: two tasks pass a token n times through two mpsc channels (Tokio's
/// queue).
async fn queue_pingpong(n: usize) {
    let (tx1, mut rx1) = mpsc::channel::<usize>(1024);
    let (tx2, mut rx2) = mpsc::channel::<usize>(1024);
    let pong = tokio::spawn(async move {
        while let Some(v) = rx1.recv().await {
            if tx2.send(v).await.is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    for i in 0..n {
        tx1.send(i).await.unwrap();
        rx2.recv().await.unwrap();
    }
    let ns = ns_per(t0, n);
    drop(tx1);
    pong.await.unwrap();
    println!("queue_pingpong: {:.1} ns/roundtrip", ns);
}

/// W6c: 100 tasks share one tokio::sync::Mutex; each locks it, yields once
/// while holding it (so the others queue up), unlocks; n acquisitions in all.
async fn lock_contended(n: usize) {
    const TASKS: usize = 100;
    let per = std::cmp::max(1, n / TASKS);
    let lock = std::sync::Arc::new(Mutex::new(0u64));
    let t0 = Instant::now();
    let handles: Vec<_> = (0..TASKS)
        .map(|_| {
            let lock = lock.clone();
            tokio::spawn(async move {
                for _ in 0..per {
                    let mut g = lock.lock().await;
                    tokio::task::yield_now().await;
                    *g += 1;
                }
            })
        })
        .collect();
    for h in handles {
        h.await.unwrap();
    }
    println!("lock_contended: {:.1} ns/op", ns_per(t0, per * TASKS));
}

/// W5: echo server, one task per connection.
async fn echo(port: u16) {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    loop {
        let (mut sock, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let k = match sock.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(k) => k,
                };
                if sock.write_all(&buf[..k]).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 {
        eprintln!("usage: peer-tokio WORKLOAD [N] | peer-tokio echo PORT");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let w = args[1].as_str();
    if w == "echo" {
        let port: u16 = args.get(2).and_then(|p| p.parse().ok()).expect("echo PORT");
        rt.block_on(echo(port));
        return;
    }
    let default = if w == "sleep_many" { 100_000 } else { 1_000_000 };
    let n = match args.get(2) {
        Some(s) => s.parse::<f64>().ok().filter(|v| *v >= 1.0).expect("bad count") as usize,
        None => default,
    };
    // Each body runs as a spawned task, not as block_on's own future: a
    // block_on future is woken through the driver (an eventfd write and an
    // epoll_wait per wake-up), a spawned task through the run queue.
    let run = |body: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>| {
        rt.block_on(async move { tokio::spawn(body).await.unwrap() })
    };
    match w {
        "spawn" => run(Box::pin(spawn(n))),
        "pingpong" => run(Box::pin(pingpong(n))),
        "pingpong_mpsc" => run(Box::pin(pingpong_mpsc(n))),
        "pingpong_notify" => run(Box::pin(pingpong_notify(n))),
        "sleep_many" => run(Box::pin(sleep_many(n))),
        "yield" => run(Box::pin(yield_(n))),
        "timers" => run(Box::pin(timers(n))),
        "timers_task" => run(Box::pin(timers_task(n))),
        "queue_pingpong" => run(Box::pin(queue_pingpong(n))),
        "lock_contended" => run(Box::pin(lock_contended(n))),
        _ => {
            eprintln!("unknown workload {}", w);
            std::process::exit(2);
        }
    }
}
