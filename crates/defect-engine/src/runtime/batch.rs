//! Cross-stream batching: frames from several detectors (elements) that share one session with
//! a dynamic batch dimension are inferred together, as one `[n, C, H, W]` run.
//!
//! A [`Batcher`] owns one thread that runs the batches. A frame joins the batch being collected
//! (its input is copied into the batch tensor), or opens a new one; the thread runs a batch
//! when it is full (`capacity` frames) or when the earliest deadline of its frames has passed
//! (each frame waits at most its own timeout for partners). Every frame then gets back exactly
//! its own slice of every output (`[1, ...]`), whatever the other frames were.
//!
//! Waiting never hangs: a frame's wait ends when its batch has run, or at once when its
//! caller says it is interrupted (element stopping or flushing); the batch then still runs
//! for the others and the abandoned slice is dropped. The batch thread never runs a model
//! for a caller that is gone forever: it ends when the last [`Batcher`] handle is dropped.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::lock;

/// One output of one frame, cut from the batch: the batch dimension is 1.
#[derive(Debug, Clone, PartialEq)]
pub struct FrameOutput {
    pub name: String,
    pub shape: Vec<i64>,
    /// None where the output is not float32 (nothing reads those).
    pub data: Option<Vec<f32>>,
}

/// Runs a batch: `count` frames of `frame_len` values each, back to back; returns the outputs
/// of each frame, in order.
pub type RunBatch = Box<dyn FnMut(&[f32], usize) -> Result<Vec<Vec<FrameOutput>>, String> + Send>;

/// What a frame got back from its batch.
#[derive(Debug)]
pub struct Batched {
    pub outputs: Vec<FrameOutput>,
    /// How many frames the batch held (1: it ran alone).
    pub batch: usize,
}

/// Why a frame got no result.
#[derive(Debug, Clone, PartialEq)]
pub enum BatchError {
    /// The caller was interrupted while waiting.
    Interrupted,
    /// The batch (every frame of it) failed.
    Failed(String),
}

/// A batch's outputs: per frame, taken by its caller; Err for the whole batch.
type BatchResult = Result<Vec<Option<Vec<FrameOutput>>>, String>;

/// What a batch's frames wait on.
#[derive(Default)]
struct Cell {
    result: Mutex<Option<BatchResult>>,
}

struct Open {
    cell: Arc<Cell>,
    input: Vec<f32>,
    count: usize,
    deadline: Instant,
}

#[derive(Default)]
struct State {
    open: Option<Open>,
    /// The last batch's tensor, reused.
    spare: Vec<f32>,
    shutdown: bool,
    batches: u64,
    frames: u64,
}

struct Inner {
    state: Mutex<State>,
    changed: Condvar,
    capacity: usize,
    frame_len: usize,
}

/// A handle on a batch thread; the thread ends when the last handle is dropped.
pub struct Batcher {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Batcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("capacity", &self.inner.capacity)
            .finish_non_exhaustive()
    }
}

/// How often a waiting frame checks whether its caller was interrupted.
const POLL: Duration = Duration::from_millis(5);

impl Batcher {
    /// Starts the batch thread for batches of up to `capacity` frames of `frame_len` values.
    pub fn start(capacity: usize, frame_len: usize, run: RunBatch) -> std::io::Result<Self> {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
            capacity: capacity.max(1),
            frame_len,
        });
        let thread_inner = inner.clone();
        std::thread::Builder::new()
            .name("defect-batch".into())
            .spawn(move || batch_thread(thread_inner, run))?;
        Ok(Self { inner })
    }

    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Batches run and frames inferred in them so far.
    #[cfg(test)]
    pub fn stats(&self) -> (u64, u64) {
        let state = lock(&self.inner.state);
        (state.batches, state.frames)
    }

    /// Infers one frame (`input`, `frame_len` values) in a batch with whatever frames other
    /// callers hand in before the batch is full or `timeout` has passed. `interrupted` is
    /// polled while waiting: when it says true the wait ends with [`BatchError::Interrupted`].
    pub fn infer(
        &self,
        input: &[f32],
        timeout: Duration,
        interrupted: &dyn Fn() -> bool,
    ) -> Result<Batched, BatchError> {
        let inner = &*self.inner;
        if input.len() != inner.frame_len {
            return Err(BatchError::Failed(format!(
                "a frame of {} values for a batch of frames of {}",
                input.len(),
                inner.frame_len
            )));
        }
        if interrupted() {
            return Err(BatchError::Interrupted);
        }
        let mut state = lock(&inner.state);
        let deadline = Instant::now() + timeout;
        if state.open.is_none() {
            let mut buffer = std::mem::take(&mut state.spare);
            buffer.resize(inner.capacity * inner.frame_len, 0.0);
            state.open = Some(Open {
                cell: Arc::default(),
                input: buffer,
                count: 0,
                deadline,
            });
        }
        let open = state.open.as_mut().expect("opened above");
        let slot = open.count;
        open.input[slot * inner.frame_len..(slot + 1) * inner.frame_len].copy_from_slice(input);
        open.count += 1;
        open.deadline = open.deadline.min(deadline);
        let cell = open.cell.clone();
        inner.changed.notify_all();
        loop {
            if let Some(result) = lock(&cell.result).as_mut() {
                return match result {
                    Ok(frames) => {
                        let batch = frames.len();
                        let outputs = frames[slot]
                            .take()
                            .ok_or_else(|| BatchError::Failed("result taken twice".into()))?;
                        Ok(Batched { outputs, batch })
                    }
                    Err(reason) => Err(BatchError::Failed(reason.clone())),
                };
            }
            if interrupted() {
                return Err(BatchError::Interrupted);
            }
            state = inner
                .changed
                .wait_timeout(state, POLL)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        lock(&self.inner.state).shutdown = true;
        self.inner.changed.notify_all();
    }
}

/// Waits for a batch to be full or due, runs it, hands out the results; ends at shutdown.
fn batch_thread(inner: Arc<Inner>, mut run: RunBatch) {
    loop {
        let open = {
            let mut state = lock(&inner.state);
            loop {
                if state.shutdown {
                    return;
                }
                let now = Instant::now();
                match &state.open {
                    Some(open) if open.count >= inner.capacity || now >= open.deadline => {
                        break state.open.take().expect("matched");
                    }
                    Some(open) => {
                        let wait = open.deadline - now;
                        state = inner
                            .changed
                            .wait_timeout(state, wait)
                            .unwrap_or_else(|p| p.into_inner())
                            .0;
                    }
                    None => {
                        state = inner.changed.wait(state).unwrap_or_else(|p| p.into_inner());
                    }
                }
            }
        };
        let Open {
            cell, input, count, ..
        } = open;
        // A panic in the run fails this batch (its frames get an error) instead of leaving
        // them waiting for a thread that is gone.
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(&input[..count * inner.frame_len], count)
        }))
        .unwrap_or_else(|_| Err("the batch run panicked".into()));
        let result = ran.and_then(|frames| {
            if frames.len() == count {
                Ok(frames.into_iter().map(Some).collect())
            } else {
                Err(format!(
                    "a batch of {count} frames gave results for {}",
                    frames.len()
                ))
            }
        });
        *lock(&cell.result) = Some(result);
        let mut state = lock(&inner.state);
        state.spare = input;
        state.batches += 1;
        state.frames += count as u64;
        inner.changed.notify_all();
    }
}

/// Cuts a batch's output `[n, ...]` into the `n` frames' `[1, ...]` outputs; `frames` gets one
/// more output per frame. Errors when the output's first dimension is not `n`.
pub fn split_output(
    frames: &mut [Vec<FrameOutput>],
    name: &str,
    shape: &[i64],
    data: Option<&[f32]>,
) -> Result<(), String> {
    let n = frames.len();
    if shape.first().copied() != Some(n as i64) {
        return Err(format!(
            "output {name} of a batch of {n} frames has shape {shape:?}: the model does not keep the batch dimension"
        ));
    }
    let mut one = shape.to_vec();
    one[0] = 1;
    let per_frame = data.map(|d| d.len() / n.max(1));
    for (i, frame) in frames.iter_mut().enumerate() {
        frame.push(FrameOutput {
            name: name.to_string(),
            shape: one.clone(),
            data: data
                .zip(per_frame)
                .map(|(d, len)| d[i * len..(i + 1) * len].to_vec()),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A model that doubles every value and reports the batch size it ran with.
    fn doubling(sizes: Arc<Mutex<Vec<usize>>>) -> RunBatch {
        Box::new(move |input: &[f32], count: usize| {
            lock(&sizes).push(count);
            let doubled: Vec<f32> = input.iter().map(|v| v * 2.0).collect();
            let mut frames = vec![Vec::new(); count];
            split_output(
                &mut frames,
                "out",
                &[count as i64, 2],
                Some(doubled.as_slice()),
            )?;
            Ok(frames)
        })
    }

    #[test]
    fn frames_of_one_batch_get_their_own_results() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let batcher = Arc::new(Batcher::start(2, 2, doubling(sizes.clone())).unwrap());
        let threads: Vec<_> = (0..2)
            .map(|i| {
                let batcher = batcher.clone();
                std::thread::spawn(move || {
                    let input = [i as f32, 10.0 + i as f32];
                    batcher
                        .infer(&input, Duration::from_secs(10), &|| false)
                        .unwrap()
                })
            })
            .collect();
        for (i, thread) in threads.into_iter().enumerate() {
            let got = thread.join().unwrap();
            assert_eq!(
                got.batch, 2,
                "a full batch runs at once, not at the timeout"
            );
            assert_eq!(got.outputs[0].shape, vec![1, 2]);
            assert_eq!(
                got.outputs[0].data.as_deref(),
                Some(&[2.0 * i as f32, 2.0 * (10.0 + i as f32)][..])
            );
        }
        assert_eq!(*lock(&sizes), vec![2]);
        assert_eq!(batcher.stats(), (1, 2));
    }

    #[test]
    fn a_lone_frame_runs_when_its_timeout_expires() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let batcher = Batcher::start(4, 2, doubling(sizes.clone())).unwrap();
        let started = Instant::now();
        let got = batcher
            .infer(&[1.0, 2.0], Duration::from_millis(30), &|| false)
            .unwrap();
        let took = started.elapsed();
        assert_eq!(got.batch, 1);
        assert_eq!(got.outputs[0].data.as_deref(), Some(&[2.0, 4.0][..]));
        assert!(took >= Duration::from_millis(30), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn an_interrupted_wait_ends_and_the_batch_still_serves_the_others() {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let batcher = Arc::new(Batcher::start(2, 1, doubling(sizes.clone())).unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let waiting = {
            let (batcher, stop) = (batcher.clone(), stop.clone());
            std::thread::spawn(move || {
                batcher.infer(&[1.0], Duration::from_secs(3600), &|| {
                    stop.load(Ordering::SeqCst)
                })
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        let started = Instant::now();
        stop.store(true, Ordering::SeqCst);
        assert_eq!(
            waiting.join().unwrap().unwrap_err(),
            BatchError::Interrupted
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        // The abandoned frame's batch runs with the next frame; that one gets its own result.
        let got = batcher
            .infer(&[5.0], Duration::from_secs(3600), &|| false)
            .unwrap();
        assert_eq!(got.outputs[0].data.as_deref(), Some(&[10.0][..]));
        assert_eq!(*lock(&sizes), vec![2]);
    }

    #[test]
    fn a_model_that_drops_the_batch_dimension_fails_the_batch() {
        let batcher = Arc::new(
            Batcher::start(
                2,
                1,
                Box::new(|_: &[f32], count: usize| {
                    let mut frames = vec![Vec::new(); count];
                    split_output(&mut frames, "out", &[1, 3], Some(&[0.0; 3][..]))?;
                    Ok(frames)
                }),
            )
            .unwrap(),
        );
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let batcher = batcher.clone();
                std::thread::spawn(move || {
                    batcher.infer(&[1.0], Duration::from_secs(3600), &|| false)
                })
            })
            .collect();
        for thread in threads {
            let err = thread.join().unwrap().unwrap_err();
            assert!(
                matches!(&err, BatchError::Failed(m) if m.contains("does not keep the batch dimension")),
                "{err:?}"
            );
        }
        assert!(matches!(
            batcher.infer(&[1.0, 2.0], Duration::ZERO, &|| false),
            Err(BatchError::Failed(_))
        ));
    }
}
