// SPDX-License-Identifier: MIT OR Apache-2.0
//! `cargo bench --profile dev --bench reject_timing` (or `--release`): how close to their due
//! time reject pulses leave, over `BENCH_PULSES` (default 10,000) pulses through
//! `defectmodbussink`'s Modbus worker (`gstdefect::plc::modbus`) to a local Modbus TCP server
//! (`tokio-modbus`'s, in this process, recording when each coil write arrives).
//!
//! Measured, each as p50 / p99 / max:
//! 1. due -> write: from a reject's due time to the start of its coil write (the worker's
//!    timer wake-up and scheduling);
//! 2. due -> received: from its due time to its arrival at the server (what the PLC sees);
//! 3. the baselines, measured in the same run: a bare thread sleeping until deadlines (the
//!    operating system's timer overshoot) and back-to-back coil writes of a bare
//!    `tokio-modbus` client (request to response), which bound what any worker can do.
//!
//! Rejects are due every `BENCH_SPACING_MS` (default 4) with 1 ms pulses, so the worker also
//! writes the coil off between them, and its heartbeat (1 s) runs meanwhile, as in use. The
//! worker runs twice: at normal priority, then under `SCHED_FIFO` at `BENCH_RT_PRIORITY`
//! (default 50; 0 skips it), as the element's `realtime-priority` puts it.
//! Without `--bench` (the bench binary run directly) a smoke run of 200 pulses checks that the
//! measurement works; its figures mean nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gstdefect::plc::modbus::{Due, Event, Modbus, ModbusConfig, Reject};
use tokio_modbus::client::Writer;

mod common;
use common::{Arrivals, cpu_ticks, env_or, load_average, quantiles, start_server, timer_flags};

/// The operating system's timer overshoot: a bare thread sleeping until `n` deadlines.
fn baseline_timer(n: usize, spacing: Duration) -> Vec<Duration> {
    let start = Instant::now() + Duration::from_millis(10);
    (0..n)
        .map(|i| {
            let due = start + spacing * i as u32;
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            Instant::now().saturating_duration_since(due)
        })
        .collect()
}

/// Request to response of `n` coil writes by a bare tokio-modbus client.
fn baseline_round_trip(port: u16, n: usize) -> Vec<Duration> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut ctx = tokio_modbus::client::tcp::attach_slave(stream, tokio_modbus::Slave(1));
        let mut times = Vec::with_capacity(n);
        for i in 0..n {
            let started = Instant::now();
            ctx.write_single_coil(7, i % 2 == 0).await.unwrap().unwrap();
            times.push(started.elapsed());
        }
        times
    })
}

fn row(name: &str, q: [f64; 3]) {
    println!("  {name:<40} {:>9.1} {:>9.1} {:>9.1}", q[0], q[1], q[2]);
}

/// What one run of the worker gave.
struct Run {
    to_write: Vec<Duration>,
    to_received: Vec<Duration>,
    fired: u64,
    missed: Vec<String>,
    received: usize,
    /// Why the real-time priority was refused, if it was.
    refused: Option<String>,
}

/// `pulses` rejects `spacing` apart through the worker, at `priority` (SCHED_FIFO) or not.
fn measure(
    port: u16,
    arrivals: &Arrivals,
    pulses: usize,
    spacing: Duration,
    priority: Option<i32>,
) -> Run {
    arrivals.lock().unwrap().clear();
    let fired: Arc<Mutex<Vec<(Instant, Instant)>>> = Arc::new(Mutex::new(Vec::new()));
    let missed = Arc::new(Mutex::new(Vec::new()));
    let refused = Arc::new(Mutex::new(None));
    let config = ModbusConfig {
        reject_coil: 0,
        pulse: Duration::from_millis(1),
        max_lateness: Duration::from_millis(50),
        realtime_priority: priority,
        ..ModbusConfig::new("127.0.0.1", port)
    };
    let (f, m, r) = (fired.clone(), missed.clone(), refused.clone());
    let modbus = Modbus::start(config, move |event| match event {
        Event::Fired { due, written, .. } => f.lock().unwrap().push((due, written)),
        Event::Missed { label, reason } => m.lock().unwrap().push(format!("{label}: {reason}")),
        Event::PriorityRefused { reason, .. } => *r.lock().unwrap() = Some(reason),
        _ => {}
    })
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !modbus.stats().connected {
        assert!(
            Instant::now() < deadline,
            "no connection to the local server"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let start = Instant::now() + Duration::from_millis(100);
    let due: Vec<Instant> = (0..pulses).map(|i| start + spacing * i as u32).collect();
    for (i, at) in due.iter().enumerate() {
        modbus.schedule(Reject {
            due: Due::At(*at),
            label: format!("reject {i}"),
        });
    }
    assert!(
        modbus.wait_idle(spacing * pulses as u32 + Duration::from_secs(30), || true),
        "the rejects did not all fall due"
    );
    let stats = modbus.stop();
    std::thread::sleep(Duration::from_millis(50));

    let mut fired = fired.lock().unwrap().clone();
    fired.sort_by_key(|(_, written)| *written);
    let to_write: Vec<Duration> = fired
        .iter()
        .map(|(due, written)| written.saturating_duration_since(*due))
        .collect();
    let mut received = arrivals.lock().unwrap().clone();
    received.sort();
    // One coil-on write per pulse fired, and none for a missed reject: in time order, the
    // n-th arrival is the n-th pulse's.
    let to_received: Vec<Duration> = if received.len() == fired.len() {
        received
            .iter()
            .zip(&fired)
            .map(|(r, (d, _))| r.saturating_duration_since(*d))
            .collect()
    } else {
        println!(
            "  {} pulses fired but {} arrived: no due -> received figures",
            fired.len(),
            received.len()
        );
        Vec::new()
    };
    let missed = missed.lock().unwrap().clone();
    assert_eq!(
        stats.fired as usize + missed.len(),
        pulses,
        "every reject fired or missed"
    );
    let refused = refused.lock().unwrap().clone();
    Run {
        to_write,
        to_received,
        fired: stats.fired,
        missed,
        received: received.len(),
        refused,
    }
}

fn report(name: &str, run: Run) {
    let over_5ms = run
        .to_received
        .iter()
        .filter(|d| **d > Duration::from_millis(5))
        .count();
    if let Some(reason) = &run.refused {
        println!("  ({name}: real-time priority refused: {reason}; ran at normal priority)");
    }
    row(
        &format!("{name}: due -> write started"),
        quantiles(run.to_write),
    );
    row(
        &format!("{name}: due -> received"),
        quantiles(run.to_received),
    );
    println!(
        "  {name}: fired {}, missed {}, received {}, later than 5 ms: {over_5ms}",
        run.fired,
        run.missed.len(),
        run.received
    );
    for line in run.missed.iter().take(5) {
        println!("    missed {line}");
    }
}

fn main() {
    let smoke = !std::env::args().any(|arg| arg == "--bench");
    if smoke {
        println!(
            "smoke run (no --bench): figures are meaningless; measure with \
             `cargo bench --profile dev --bench reject_timing`"
        );
    }
    let pulses: usize = env_or("BENCH_PULSES", if smoke { 200 } else { 10_000 });
    let spacing = Duration::from_millis(env_or("BENCH_SPACING_MS", 4));
    // The priority of the second run (realtime-priority); 0: no second run.
    let priority: i32 = env_or("BENCH_RT_PRIORITY", 50);
    let arrivals: Arrivals = Arc::new(Mutex::new(Vec::new()));
    let (port, server_realtime) = start_server(arrivals.clone());

    println!(
        "reject timing: {pulses} pulses {} ms apart, 1 ms long, to a local Modbus TCP server",
        spacing.as_millis()
    );
    println!(
        "CPU: {} ({} threads), load average {}",
        gstdefect::runtime::cpu::CpuDescription::detect().summary(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    println!("timer: {}", timer_flags());
    println!(
        "the server (the PLC's stand-in) runs {}",
        if server_realtime {
            "under SCHED_FIFO 60"
        } else {
            "at normal priority (SCHED_FIFO refused)"
        }
    );
    let timer = quantiles(baseline_timer(pulses.min(2000), spacing));
    let round_trip = quantiles(baseline_round_trip(port, pulses.min(2000)));
    let ticks_before = cpu_ticks();
    let normal = measure(port, &arrivals, pulses, spacing, None);
    let realtime =
        (priority > 0).then(|| measure(port, &arrivals, pulses, spacing, Some(priority)));
    let ticks_after = cpu_ticks();

    println!(
        "  {:<40} {:>9} {:>9} {:>9}",
        "microseconds", "p50", "p99", "max"
    );
    row("baseline: thread sleep overshoot", timer);
    row("baseline: bare write round trip", round_trip);
    let received = quantiles(normal.to_received.clone());
    report("worker", normal);
    if let Some(run) = realtime {
        report(&format!("worker, SCHED_FIFO {priority}"), run);
    }
    println!(
        "  worker due -> received p50 / (sleep overshoot + round trip) p50: {:.2}",
        received[0] / (timer[0] + round_trip[0])
    );
    let total = ticks_after.0.saturating_sub(ticks_before.0).max(1);
    let steal = ticks_after.1.saturating_sub(ticks_before.1);
    println!(
        "load average after: {}; CPU time stolen by the hypervisor during the runs: {:.1}%",
        load_average(),
        100.0 * steal as f64 / total as f64
    );
}
