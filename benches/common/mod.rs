// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the benchmarks share: a Modbus TCP server in the process that records when each
//! coil-on write arrives (the PLC's stand-in, for the benchmarks that drive a PLC), quantiles,
//! timing loops and settings from the environment. Each benchmark uses a part of it.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_modbus::server::tcp::{Server, accept_tcp_connection};
use tokio_modbus::{ExceptionCode, Request, Response};

/// Arrival times of coil-on writes at the server.
pub type Arrivals = Arc<Mutex<Vec<Instant>>>;

struct Recorder {
    arrivals: Arrivals,
}

impl tokio_modbus::server::Service for Recorder {
    type Request = Request<'static>;
    type Response = Response;
    type Exception = ExceptionCode;
    type Future = std::future::Ready<Result<Response, ExceptionCode>>;

    fn call(&self, req: Self::Request) -> Self::Future {
        let now = Instant::now();
        std::future::ready(match req {
            Request::WriteSingleCoil(address, on) => {
                if on {
                    self.arrivals.lock().unwrap().push(now);
                }
                Ok(Response::WriteSingleCoil(address, on))
            }
            Request::WriteSingleRegister(address, value) => {
                Ok(Response::WriteSingleRegister(address, value))
            }
            Request::WriteMultipleRegisters(address, values) => Ok(
                Response::WriteMultipleRegisters(address, values.len() as u16),
            ),
            _ => Err(ExceptionCode::IllegalFunction),
        })
    }
}

/// Puts the calling thread under SCHED_FIFO at `priority`; false when refused.
pub fn realtime(priority: i32) -> bool {
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` outlives the call; pthread_self() names the calling thread.
    unsafe { libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param) == 0 }
}

/// Starts the server on a free port of 127.0.0.1, on its own thread. It stands in for a PLC,
/// a device of its own that the station's load does not slow down: its thread runs under
/// SCHED_FIFO (priority 60) where that is allowed. Returns the port and whether it does.
pub fn start_server(arrivals: Arrivals) -> (u16, bool) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("modbus-server".into())
        .spawn(move || {
            let _ = tx.send(realtime(60));
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let server = Server::new(listener);
                let on_connected = |stream: tokio::net::TcpStream, addr| {
                    let arrivals = arrivals.clone();
                    async move {
                        stream.set_nodelay(true)?;
                        accept_tcp_connection(stream, addr, move |_| {
                            Ok(Some(Recorder {
                                arrivals: arrivals.clone(),
                            }))
                        })
                    }
                };
                let _ = server.serve(&on_connected, |_| {}).await;
            });
        })
        .unwrap();
    (port, rx.recv().unwrap_or(false))
}

/// p50, p99 and max of durations, in microseconds (NaN when there are none).
pub fn quantiles(mut samples: Vec<Duration>) -> [f64; 3] {
    samples.sort();
    if samples.is_empty() {
        return [f64::NAN; 3];
    }
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[i].as_secs_f64() * 1e6
    };
    [at(0.5), at(0.99), at(1.0)]
}

pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

/// What bears on timing: the CPU's timer flags (of those it has, e.g. `hypervisor`,
/// `tsc_deadline_timer`) and the kernel's clock source.
pub fn timer_flags() -> String {
    const SHOWN: [&str; 5] = [
        "hypervisor",
        "constant_tsc",
        "nonstop_tsc",
        "tsc_deadline_timer",
        "tsc_known_freq",
    ];
    let flags: Vec<String> = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("flags"))
                .map(|f| f.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .map(|f| {
            f.split_whitespace()
                .filter(|flag| SHOWN.contains(flag))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let clock =
        std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .map(|c| c.trim().to_string())
            .unwrap_or_else(|_| "?".into());
    format!("{}; clock source {clock}", flags.join(" "))
}

/// CPU time counters from /proc/stat: (total, steal), in clock ticks.
pub fn cpu_ticks() -> (u64, u64) {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|stat| {
            let line = stat.lines().next()?.strip_prefix("cpu ")?.to_string();
            let fields: Vec<u64> = line
                .split_whitespace()
                .filter_map(|f| f.parse().ok())
                .collect();
            // user nice system idle iowait irq softirq steal ...
            Some((fields.iter().take(8).sum(), *fields.get(7)?))
        })
        .unwrap_or((0, 0))
}

/// The fastest of five windows of `seconds / 5` each: the time per call of `f`.
pub fn time_per_call(seconds: f64, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..5 {
        let (mut calls, started) = (0u32, Instant::now());
        while started.elapsed().as_secs_f64() < seconds / 5.0 || calls == 0 {
            f();
            calls += 1;
        }
        best = best.min(started.elapsed() / calls);
    }
    best
}
