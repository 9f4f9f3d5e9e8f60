//! A loaded YOLO-style detector: session, what it expects and how to decode it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ort::ep::{
    self, ArbitrarilyConfigurableExecutionProvider as _, ExecutionProvider as _,
    ExecutionProviderDispatch,
};
use ort::session::{RunOptions, Session};
use ort::value::{TensorElementType, TensorRef, ValueType};

use super::batch::{BatchError, Batcher, FrameOutput, split_output};
use super::{OpenVinoDevice, Precision, Provider, RuntimeError, library};
use crate::analysis::Detection;
use crate::analysis::anomaly::AnomalyMap;
use crate::analysis::decode::{self, DecodeStats, Decoder, OutputLayout};
use crate::analysis::model_meta;
use crate::analysis::segment::{self, SegmentLayout};
use crate::analysis::task::{self, AnomalyOutputs, OutputSpec, Task};

/// Input size used when neither the model's input shape nor its `imgsz` metadata gives one
/// (the Ultralytics default).
const FALLBACK_IMAGE_SIZE: u32 = 640;

/// The largest model input accepted by default, in pixels (height x width): 4096 x 4096, a 4K
/// frame or tile. Its float32 RGB tensor is 192 MiB.
pub const DEFAULT_MAX_INPUT_PIXELS: u64 = 4096 * 4096;

/// Labels files are read up to this size.
pub const MAX_LABELS_BYTES: u64 = 4 << 20;

/// What to load and how.
#[derive(Debug, Clone, Default)]
pub struct DetectorOptions {
    pub model: PathBuf,
    /// One class name a line; overrides the model's `names` metadata.
    pub labels: Option<PathBuf>,
    /// None decodes the layout the output shape implies.
    pub layout: Option<OutputLayout>,
    /// None reads the task from the `task` metadata, else from the outputs.
    pub task: Option<Task>,
    pub provider: Provider,
    /// Intra-op threads; 0 leaves ONNX Runtime's default.
    pub threads: usize,
    /// Whether ONNX Runtime's intra-op threads spin while waiting for work; None leaves ONNX
    /// Runtime's default (they spin).
    pub spin: Option<bool>,
    /// The device and precision of the OpenVINO provider (ignored by the others).
    pub openvino_device: OpenVinoDevice,
    pub precision: Precision,
    pub ort_library: Option<PathBuf>,
    /// The largest input (height x width) accepted, checked before anything of that size is
    /// allocated; 0 means [`DEFAULT_MAX_INPUT_PIXELS`].
    pub max_input_pixels: u64,
    /// Frames of detectors loading the same model the same way (same file content, provider
    /// settings and batch size) are inferred together in batches of up to this many, where the
    /// model's batch dimension is dynamic; 0 or 1: every frame runs alone.
    pub batch_size: usize,
    /// How long a frame waits for partners before its batch runs anyway.
    pub batch_timeout: std::time::Duration,
}

impl DetectorOptions {
    fn max_input_pixels(&self) -> u64 {
        if self.max_input_pixels == 0 {
            DEFAULT_MAX_INPUT_PIXELS
        } else {
            self.max_input_pixels
        }
    }
}

/// What the model expects and produces, found at load time.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    pub path: PathBuf,
    pub input_name: String,
    /// 3 (RGB) or 1 (grey).
    pub channels: usize,
    pub width: u32,
    pub height: u32,
    pub output_shape: Vec<i64>,
    /// What the model does: detect, classify or anomaly.
    pub task: Task,
    /// Every output as the session declares it.
    pub outputs: Vec<OutputSpec>,
    /// Where an anomaly model's map and score are.
    pub anomaly: Option<AnomalyOutputs>,
    /// A segmentation model's detections and prototypes outputs.
    pub segment: Option<SegmentLayout>,
    /// An anomaly model's own thresholds: its `image_threshold` and `pixel_threshold`
    /// metadata (ours), or 0.5 for an Anomalib 2.x export (normalised scores).
    pub anomaly_thresholds: (Option<f32>, Option<f32>),
    /// Detection models only (meaningless for the other tasks).
    pub layout: OutputLayout,
    /// Class names indexed by class id: from `labels`, else the `names` metadata, else
    /// `class<N>` for the classes the output shape implies.
    pub names: Vec<String>,
    /// Classes the output shape implies (None for end-to-end outputs, which do not say).
    pub class_count: Option<usize>,
    /// All custom metadata of the model (Ultralytics writes names, imgsz, stride, version...).
    pub metadata: BTreeMap<String, String>,
    /// The execution provider sessions actually run on.
    pub provider: &'static str,
    /// SHA-256 of the model file, hex: ties every result to the exact model.
    pub sha256: String,
    /// Time of a warm run at load (the second dry run), an estimate of the inference latency.
    pub warm_run: std::time::Duration,
    /// Why this model's 8-bit kernels can saturate on this CPU (full-range int8 weights on the
    /// CPU provider of a CPU without VNNI, see [`super::cpu`]); None where they cannot.
    pub int8_risk: Option<String>,
}

impl ModelInfo {
    /// The model file's stem (borrowed: verdicts name the model on every frame).
    pub fn name(&self) -> std::borrow::Cow<'_, str> {
        self.path
            .file_stem()
            .map_or(std::borrow::Cow::Borrowed("model"), |s| s.to_string_lossy())
    }

    /// A short identity for verdicts: file stem, metadata `version`, first 12 hex digits of
    /// the SHA-256.
    pub fn model_id(&self) -> String {
        let stem = self
            .path
            .file_stem()
            .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
        let version = self.metadata.get("version").map_or("?", String::as_str);
        format!(
            "{stem}:{version}:{}",
            &self.sha256[..12.min(self.sha256.len())]
        )
    }

    /// The class name of an id, `class<N>` for ids the model does not name.
    pub fn class_name(&self, class_id: usize) -> String {
        self.names
            .get(class_id)
            .cloned()
            .unwrap_or_else(|| model_meta::default_class_name(class_id))
    }

    /// Whether detections can carry this class name: one of `names`, or the default name
    /// `class<N>` of an id the model may output but does not name.
    pub fn knows_class(&self, name: &str) -> bool {
        if self.names.iter().any(|n| n == name) {
            return true;
        }
        model_meta::default_class_id(name).is_some_and(|id| {
            id >= self.names.len()
                && self.class_count.is_none_or(|count| id < count)
                && id < decode::MAX_CLASS_ID as usize
        })
    }
}

/// Stops a detector's run in progress from another thread (a state change that must not wait
/// for a long inference); the run returns [`RuntimeError::Interrupted`]. Runs started while
/// interrupted return at once, until [`Interrupter::reset`].
#[derive(Clone)]
pub struct Interrupter {
    options: Arc<RunOptions>,
    interrupted: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for Interrupter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Interrupter")
            .field("interrupted", &self.is_interrupted())
            .finish()
    }
}

impl Interrupter {
    fn new() -> Result<Self, String> {
        Ok(Self {
            options: Arc::new(RunOptions::new().map_err(|e| e.to_string())?),
            interrupted: Arc::default(),
        })
    }

    pub fn interrupt(&self) {
        self.interrupted
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.options.terminate();
    }

    pub fn reset(&self) {
        self.interrupted
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let _ = self.options.unterminate();
    }

    pub fn is_interrupted(&self) -> bool {
        self.interrupted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What makes two loads the same session: the file (by content), where and how it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SessionKey {
    sha256: String,
    provider: Provider,
    threads: usize,
    spin: Option<bool>,
    openvino_device: OpenVinoDevice,
    precision: Precision,
    /// Detectors batching together share a session of their own.
    batch_size: usize,
}

/// Sessions in use, shared by the detectors (elements) that load the same model the same way:
/// one copy of the weights and one thread pool instead of one per element.
static SESSIONS: std::sync::Mutex<
    Vec<(SessionKey, std::sync::Weak<std::sync::Mutex<SharedSession>>)>,
> = std::sync::Mutex::new(Vec::new());

/// A session and the provider it runs on.
struct SharedSession {
    session: Session,
    provider: &'static str,
    /// The batch thread of the detectors batching on this session, while one of them lives.
    batcher: std::sync::Weak<Batcher>,
}

/// The live session for `key`, or a new one made by `build` and remembered.
fn shared_session(
    key: SessionKey,
    build: impl FnOnce() -> Result<(Session, &'static str), String>,
) -> Result<Arc<std::sync::Mutex<SharedSession>>, String> {
    let mut sessions = SESSIONS.lock().unwrap_or_else(|p| p.into_inner());
    sessions.retain(|(_, weak)| weak.strong_count() > 0);
    if let Some(session) = sessions
        .iter()
        .find(|(k, _)| *k == key)
        .and_then(|(_, weak)| weak.upgrade())
    {
        return Ok(session);
    }
    let (session, provider) = build()?;
    let shared = Arc::new(std::sync::Mutex::new(SharedSession {
        session,
        provider,
        batcher: std::sync::Weak::new(),
    }));
    sessions.push((key, Arc::downgrade(&shared)));
    Ok(shared)
}

/// A session with its input tensor and decoder, ready to run frame after frame.
pub struct Detector {
    session: Arc<std::sync::Mutex<SharedSession>>,
    info: ModelInfo,
    input: Vec<f32>,
    decoder: Decoder,
    interrupter: Interrupter,
    /// Where frames are batched with other detectors' frames (batch-size > 1 and a model with a
    /// dynamic batch dimension), and how long a frame waits for partners.
    batch: Option<(Arc<Batcher>, std::time::Duration)>,
    /// Runs that shared a batch with another frame.
    batched_runs: u64,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl Detector {
    /// Loads the library (first time), the model, and checks that its input is an image and its
    /// output decodable by running it once. Returns warnings to report (fallbacks).
    pub fn load(options: &DetectorOptions) -> Result<(Self, Vec<String>), RuntimeError> {
        let path = options.model.clone();
        if path.as_os_str().is_empty() {
            return Err(RuntimeError::Model {
                path,
                reason: "no model given (set the `model` property)".into(),
            });
        }
        let model_error = |reason: String| RuntimeError::Model {
            path: path.clone(),
            reason,
        };
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::ModelMissing(path));
            }
            Err(e) => return Err(model_error(e.to_string())),
            Ok(m) if !m.is_file() => {
                return Err(model_error(format!(
                    "is {}, not an ONNX model file",
                    crate::files::describe_non_regular(m.file_type())
                )));
            }
            Ok(_) => {}
        }
        let library = options.ort_library.clone().or_else(|| {
            (options.provider == Provider::OpenVino)
                .then(library::openvino_library)
                .flatten()
        });
        let (env, library_warning) = library::environment(library.as_deref())?;
        let mut warnings: Vec<String> = library_warning.into_iter().collect();

        let sha256 =
            file_sha256(&path).map_err(|e| model_error(format!("cannot read the file: {e}")))?;
        let key = SessionKey {
            sha256: sha256.clone(),
            provider: options.provider,
            threads: options.threads,
            spin: options.spin,
            openvino_device: options.openvino_device,
            precision: options.precision,
            batch_size: options.batch_size.max(1),
        };
        let session = shared_session(key, || build_session(&env, options, &mut warnings))
            .map_err(model_error)?;
        let (input, metadata, provider, outputs) = {
            let shared = session.lock().unwrap_or_else(|p| p.into_inner());
            let metadata = read_metadata(&shared.session, &mut warnings);
            (
                image_input(&shared.session, &metadata, options.max_input_pixels()),
                metadata,
                shared.provider,
                output_specs(&shared.session),
            )
        };
        let task = task::detect_task(
            options.task,
            metadata.get(TASK_METADATA_KEY).map(String::as_str),
            &outputs,
        )
        .map_err(|e| model_error(e.to_string()))?;
        let (input_name, channels, height, width) = input.map_err(model_error)?;
        let mut names = class_names(options.labels.as_deref(), &metadata, &mut warnings)?;
        warnings.extend(model_meta::sanitize_names(&mut names));
        let interrupter = Interrupter::new().map_err(model_error)?;

        let mut detector = Detector {
            session,
            info: ModelInfo {
                path: path.clone(),
                input_name,
                channels,
                width,
                height,
                output_shape: Vec::new(),
                warm_run: std::time::Duration::ZERO,
                task: Task::Detect,
                outputs,
                anomaly: None,
                segment: None,
                anomaly_thresholds: (None, None),
                layout: OutputLayout::YoloV8,
                names,
                class_count: None,
                metadata,
                provider,
                sha256,
                int8_risk: None,
            },
            // Within max-input-pixels: checked by image_input.
            input: vec![0.0; channels * width as usize * height as usize],
            decoder: Decoder::new(),
            interrupter,
            batch: None,
            batched_runs: 0,
        };
        // A dry run gives the concrete output shape (dynamic axes resolved) and warms the
        // session up, so that a model that cannot run fails now rather than on the first frame.
        let shapes = detector
            .run_session(|outputs| Ok(outputs.shapes()))
            .map_err(model_error)?;
        for (spec, shape) in detector.info.outputs.iter_mut().zip(&shapes) {
            spec.shape = shape.clone();
        }
        let output_shape = shapes.first().cloned().unwrap_or_default();
        detector.info.task = task;
        let class_count = match task {
            Task::Segment => {
                let layout = segment::require_segment_layout(&detector.info.outputs)
                    .map_err(|e| model_error(e.to_string()))?;
                detector.info.segment = Some(layout);
                Some(layout.classes)
            }
            Task::Detect => {
                detector.info.layout = choose_layout(options.layout, &output_shape, &detector.info)
                    .map_err(model_error)?;
                decode::class_count_of(detector.info.layout, &output_shape)
                    .ok()
                    .flatten()
            }
            Task::Classify => {
                let count = task::classify_output(&detector.info.outputs)
                    .map_err(|e| model_error(e.to_string()))?;
                if count.is_none_or(|c| c > decode::MAX_CLASS_ID as usize) {
                    return Err(model_error(format!(
                        "the classifier's output {output_shape:?} does not give a class count below {}",
                        decode::MAX_CLASS_ID
                    )));
                }
                count
            }
            Task::Anomaly => {
                let found = task::anomaly_outputs(&detector.info.outputs)
                    .map_err(|e| model_error(e.to_string()))?;
                detector.info.anomaly_thresholds = anomaly_thresholds(
                    &detector.info.metadata,
                    &detector.info.outputs,
                    &mut warnings,
                );
                detector.info.anomaly = Some(found);
                if detector.info.names.is_empty() {
                    detector.info.names.push("anomaly".into());
                }
                Some(detector.info.names.len())
            }
        };
        detector.info.class_count = class_count;
        detector.info.output_shape = output_shape;
        detector.info.int8_risk =
            super::quant::int8_risk(&path, provider, &super::cpu::CpuDescription::detect());
        warnings.extend(detector.info.int8_risk.clone());
        let names = &mut detector.info.names;
        match (class_count, names.len()) {
            // Without names the classes the output implies are class0, class1, ...
            (Some(count), 0) => {
                names.extend((0..count).map(model_meta::default_class_name));
            }
            (Some(count), named) if named != count => {
                let source = match &options.labels {
                    Some(labels) => format!("the labels file {} names", labels.display()),
                    None => "the `names` metadata names".into(),
                };
                warnings.push(format!(
                    "model {}: {source} {named} classes but the output has {count}; {}",
                    path.display(),
                    if named > count {
                        "the extra names are never used".to_string()
                    } else {
                        format!("classes {named}.. are named class<N>")
                    }
                ));
                if named < count {
                    names.extend((named..count).map(model_meta::default_class_name));
                }
            }
            _ => {}
        }
        // The first run pays for lazy initialisation; the second is what frames will cost.
        let started = std::time::Instant::now();
        detector.run_session(|_| Ok(())).map_err(model_error)?;
        detector.info.warm_run = started.elapsed();
        if options.batch_size > 1 {
            match detector.batch_check() {
                Ok(()) => {
                    let batcher = detector
                        .batcher(options.batch_size)
                        .map_err(|e| model_error(format!("cannot start the batch thread: {e}")))?;
                    detector.batch = Some((batcher, options.batch_timeout));
                }
                Err(reason) => warnings.push(format!(
                    "model {}: batch-size={} needs a dynamic batch dimension, but {reason}; \
                     its frames are inferred one at a time (scripts/make_batch_models.py makes a \
                     dynamic-batch copy of a model)",
                    path.display(),
                    options.batch_size
                )),
            }
        }
        Ok((detector, warnings))
    }

    /// Whether the model infers batches: a dynamic first input dimension, and every output
    /// keeping it (checked by running a batch of two).
    fn batch_check(&mut self) -> Result<(), String> {
        let shared = Arc::clone(&self.session);
        let mut shared = shared.lock().unwrap_or_else(|p| p.into_inner());
        let dims = match shared.session.inputs().first().map(|i| i.dtype()) {
            Some(ValueType::Tensor { shape, .. }) => shape.to_vec(),
            _ => Vec::new(),
        };
        if dims.first().is_none_or(|&d| d > 0) {
            return Err(format!("its input has the fixed shape {dims:?}"));
        }
        let one = self.input.len();
        let mut input = Vec::with_capacity(2 * one);
        input.extend_from_slice(&self.input);
        input.extend_from_slice(&self.input);
        let shape = [
            2,
            self.info.channels,
            self.info.height as usize,
            self.info.width as usize,
        ];
        let tensor = TensorRef::from_array_view((shape, &input[..])).map_err(|e| e.to_string())?;
        let outputs = shared
            .session
            .run(ort::inputs![self.info.input_name.as_str() => tensor])
            .map_err(|e| format!("a batch of 2 does not run ({e})"))?;
        for (name, value) in outputs.iter() {
            if value.shape().first() != Some(&2) {
                return Err(format!(
                    "its output {name} has the shape {:?} for a batch of 2",
                    value.shape().to_vec()
                ));
            }
        }
        Ok(())
    }

    /// The batch thread of this detector's session, started by the first detector batching on it.
    fn batcher(&self, batch_size: usize) -> std::io::Result<Arc<Batcher>> {
        let mut shared = self.session.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(batcher) = shared.batcher.upgrade() {
            return Ok(batcher);
        }
        let session = Arc::clone(&self.session);
        let input_name = self.info.input_name.clone();
        let (channels, height, width) = (
            self.info.channels,
            self.info.height as usize,
            self.info.width as usize,
        );
        let run = move |input: &[f32], count: usize| {
            let tensor = TensorRef::from_array_view(([count, channels, height, width], input))
                .map_err(|e| e.to_string())?;
            let mut shared = session.lock().unwrap_or_else(|p| p.into_inner());
            let outputs = shared
                .session
                .run(ort::inputs![input_name.as_str() => tensor])
                .map_err(|e| e.to_string())?;
            let mut frames = vec![Vec::new(); count];
            for (name, value) in outputs.iter() {
                let data = value.try_extract_tensor::<f32>().ok().map(|(_, d)| d);
                split_output(&mut frames, name, value.shape(), data)?;
            }
            Ok(frames)
        };
        let batcher = Arc::new(Batcher::start(batch_size, self.input.len(), Box::new(run))?);
        shared.batcher = Arc::downgrade(&batcher);
        Ok(batcher)
    }

    /// The batch size frames are inferred in (1: alone).
    pub fn batch_size(&self) -> usize {
        self.batch.as_ref().map_or(1, |(b, _)| b.capacity())
    }

    /// Runs so far that shared a batch with other detectors' frames.
    pub fn batched_runs(&self) -> u64 {
        self.batched_runs
    }

    /// How many detectors use this detector's session (itself included).
    pub fn session_users(&self) -> usize {
        Arc::strong_count(&self.session)
    }

    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// What interrupts this detector's runs from another thread.
    pub fn interrupter(&self) -> Interrupter {
        self.interrupter.clone()
    }

    /// The `[C, H, W]` input tensor the preprocessing writes into; kept between frames.
    pub fn input_mut(&mut self) -> &mut [f32] {
        &mut self.input
    }

    /// Runs the model on the current input tensor and appends the candidates above
    /// `conf_threshold` to `out`, boxes in model-input pixels, before NMS.
    pub fn detect(
        &mut self,
        conf_threshold: f32,
        out: &mut Vec<Detection>,
    ) -> Result<DecodeStats, RuntimeError> {
        let layout = self.info.layout;
        let mut decoder = std::mem::take(&mut self.decoder);
        let result = self.run_session(|outputs| {
            with_first_f32(outputs, |shape, data| {
                decoder
                    .decode(layout, shape, data, conf_threshold, out)
                    .map_err(|e| e.to_string())
            })
        });
        self.decoder = decoder;
        result.map_err(|e| self.inference_error(e))
    }

    /// Runs a segmentation model on the current input tensor: its candidates above
    /// `conf_threshold` through NMS into `out` (boxes in model-input pixels), with the kept
    /// ones' mask coefficients and, when any is kept, the frame's prototypes.
    pub fn segment(
        &mut self,
        conf_threshold: f32,
        iou_threshold: f32,
        max_detections: usize,
        out: &mut segment::SegmentBuffers,
    ) -> Result<DecodeStats, RuntimeError> {
        let Some(layout) = self.info.segment else {
            return Err(RuntimeError::Inference("not a segmentation model".into()));
        };
        let detections = self.info.outputs[layout.detections].name.clone();
        let protos = self.info.outputs[layout.protos].name.clone();
        let result = self.run_session(|outputs| {
            let (shape, data) = outputs.named_f32(&detections)?;
            let (proto_shape, proto_data) = outputs.named_f32(&protos)?;
            out.read(
                &layout,
                (shape, data),
                (proto_shape, proto_data),
                conf_threshold,
                iou_threshold,
                max_detections,
            )
            .map_err(|e| e.to_string())
        });
        result.map_err(|e| self.inference_error(e))
    }

    fn inference_error(&self, e: String) -> RuntimeError {
        if self.interrupter.is_interrupted() {
            RuntimeError::Interrupted
        } else {
            RuntimeError::Inference(e)
        }
    }

    /// Runs a classifier on the current input tensor: its raw scores (`[1, nc]`) into `out`.
    pub fn classify(&mut self, out: &mut Vec<f32>) -> Result<(), RuntimeError> {
        let result = self.run_session(|outputs| {
            with_first_f32(outputs, |shape, data| {
                if !matches!(shape, [1, _]) {
                    return Err(format!(
                        "the classifier output shape {shape:?}; expected [1, nc]"
                    ));
                }
                out.clear();
                out.extend_from_slice(data);
                Ok(())
            })
        });
        result.map_err(|e| self.inference_error(e))
    }

    /// Runs an anomaly model on the current input tensor: its image score (when it gives
    /// one) and its anomaly map.
    pub fn anomaly(&mut self) -> Result<(Option<f32>, AnomalyMap), RuntimeError> {
        let Some(found) = self.info.anomaly.clone() else {
            return Err(RuntimeError::Inference("not an anomaly model".into()));
        };
        let map_name = self.info.outputs[found.map].name.clone();
        let score_name = found.score.map(|i| self.info.outputs[i].name.clone());
        let result = self.run_session(|outputs| {
            let (shape, data) = outputs.named_f32(&map_name)?;
            let [1, 1, h, w] = shape[..] else {
                return Err(format!(
                    "the anomaly map {map_name} has shape {shape:?}; expected [1, 1, h, w]"
                ));
            };
            let map = AnomalyMap {
                width: w as usize,
                height: h as usize,
                data: data.to_vec(),
            };
            let score = match &score_name {
                Some(name) => outputs.named_f32(name)?.1.first().copied(),
                None => None,
            };
            Ok((score, map))
        });
        result.map_err(|e| self.inference_error(e))
    }

    /// Runs the model on the current input tensor and discards the output: the raw inference
    /// cost, for benchmarks.
    pub fn run_only(&mut self) -> Result<(), RuntimeError> {
        self.run_session(|_| Ok(()))
            .map_err(RuntimeError::Inference)
    }

    /// Runs the model on the current input tensor and returns its first output, shape and
    /// values: for comparing providers, precisions and model copies.
    pub fn output(&mut self) -> Result<(Vec<i64>, Vec<f32>), RuntimeError> {
        self.run_session(|outputs| {
            with_first_f32(outputs, |shape, data| Ok((shape.to_vec(), data.to_vec())))
        })
        .map_err(RuntimeError::Inference)
    }

    fn run_session<T>(
        &mut self,
        read: impl FnOnce(&Outputs) -> Result<T, String>,
    ) -> Result<T, String> {
        if let Some((batcher, timeout)) = &self.batch {
            let interrupter = &self.interrupter;
            let batched = batcher
                .infer(&self.input, *timeout, &|| interrupter.is_interrupted())
                .map_err(|e| match e {
                    BatchError::Interrupted => "interrupted while waiting for the batch".into(),
                    BatchError::Failed(reason) => reason,
                })?;
            if batched.batch > 1 {
                self.batched_runs += 1;
            }
            return read(&Outputs::Frame(&batched.outputs));
        }
        let shape = [
            1,
            self.info.channels,
            self.info.height as usize,
            self.info.width as usize,
        ];
        let tensor =
            TensorRef::from_array_view((shape, &self.input[..])).map_err(|e| e.to_string())?;
        // Detectors sharing the session take turns. While another detector runs, this one
        // waits without blocking on the lock, so that an interruption (a state change) ends
        // the wait too.
        let mut shared = loop {
            match self.session.try_lock() {
                Ok(guard) => break guard,
                Err(std::sync::TryLockError::Poisoned(p)) => break p.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => {
                    if self.interrupter.is_interrupted() {
                        return Err("interrupted while waiting for the shared session".into());
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        };
        let outputs = shared
            .session
            .run_with_options(
                ort::inputs![self.info.input_name.as_str() => tensor],
                &self.interrupter.options,
            )
            .map_err(|e| e.to_string())?;
        read(&Outputs::Session(&outputs))
    }
}

/// A run's outputs: the session's own, or one frame's cut from a batch.
enum Outputs<'a, 'r> {
    Session(&'a ort::session::SessionOutputs<'r>),
    Frame(&'a [FrameOutput]),
}

impl Outputs<'_, '_> {
    fn shapes(&self) -> Vec<Vec<i64>> {
        match self {
            Outputs::Session(outputs) => outputs.iter().map(|(_, v)| v.shape().to_vec()).collect(),
            Outputs::Frame(outputs) => outputs.iter().map(|o| o.shape.clone()).collect(),
        }
    }

    /// The first output as a float32 tensor.
    fn first_f32(&self) -> Result<(&[i64], &[f32]), String> {
        match self {
            Outputs::Session(outputs) => {
                let first = outputs.keys().next().ok_or("the model has no output")?;
                let output = outputs.get(first).ok_or("the model has no output")?;
                let (shape, data) = output
                    .try_extract_tensor::<f32>()
                    .map_err(|e| format!("the first output is not a float32 tensor ({e})"))?;
                Ok((shape, data))
            }
            Outputs::Frame(outputs) => {
                let output = outputs.first().ok_or("the model has no output")?;
                let data = output
                    .data
                    .as_deref()
                    .ok_or("the first output is not a float32 tensor")?;
                Ok((&output.shape, data))
            }
        }
    }

    /// The output `name` as a float32 tensor.
    fn named_f32(&self, name: &str) -> Result<(&[i64], &[f32]), String> {
        let missing = || format!("the model gave no output {name}");
        match self {
            Outputs::Session(outputs) => {
                let value = outputs.get(name).ok_or_else(missing)?;
                let (shape, data) = value
                    .try_extract_tensor::<f32>()
                    .map_err(|e| format!("output {name} is not a float32 tensor ({e})"))?;
                Ok((shape, data))
            }
            Outputs::Frame(outputs) => {
                let output = outputs
                    .iter()
                    .find(|o| o.name == name)
                    .ok_or_else(missing)?;
                let data = output
                    .data
                    .as_deref()
                    .ok_or_else(|| format!("output {name} is not a float32 tensor"))?;
                Ok((&output.shape, data))
            }
        }
    }
}

/// The ONNX metadata key naming the model's task (Ultralytics' and ours), not a meta field.
const TASK_METADATA_KEY: &str = "task";

/// Reads the first output as a float32 tensor.
fn with_first_f32<T>(
    outputs: &Outputs,
    read: impl FnOnce(&[i64], &[f32]) -> Result<T, String>,
) -> Result<T, String> {
    let (shape, data) = outputs.first_f32()?;
    read(shape, data)
}

/// The model's outputs as the session declares them.
fn output_specs(session: &Session) -> Vec<OutputSpec> {
    session
        .outputs()
        .iter()
        .map(|o| {
            let (shape, is_float) = match o.dtype() {
                ValueType::Tensor { ty, shape, .. } => {
                    (shape.to_vec(), *ty == TensorElementType::Float32)
                }
                _ => (Vec::new(), false),
            };
            OutputSpec {
                name: o.name().to_string(),
                shape,
                is_float,
            }
        })
        .collect()
}

/// An anomaly model's own thresholds: the `image_threshold` and `pixel_threshold` metadata,
/// else 0.5 where Anomalib's post-processor is in the graph (its bool `pred_label` or
/// `pred_mask` output: scores normalised so that its trained threshold is 0.5).
fn anomaly_thresholds(
    metadata: &BTreeMap<String, String>,
    outputs: &[OutputSpec],
    warnings: &mut Vec<String>,
) -> (Option<f32>, Option<f32>) {
    let mut read = |key: &str| {
        let text = metadata.get(key)?;
        match text.trim().parse::<f32>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                warnings.push(format!(
                    "the model's `{key}` metadata {text:?} is not a number; it is ignored"
                ));
                None
            }
        }
    };
    let (image, pixel) = (read("image_threshold"), read("pixel_threshold"));
    let normalised = outputs
        .iter()
        .any(|o| !o.is_float && (o.name == "pred_label" || o.name == "pred_mask"));
    let fallback = normalised.then_some(0.5);
    (image.or(fallback), pixel.or(fallback))
}

fn choose_layout(
    forced: Option<OutputLayout>,
    shape: &[i64],
    info: &ModelInfo,
) -> Result<OutputLayout, String> {
    let named_classes = (!info.names.is_empty()).then_some(info.names.len());
    let end2end = info
        .metadata
        .get("end2end")
        .is_some_and(|v| model_meta::parse_bool(v));
    let layout = match forced {
        Some(layout) => {
            decode::class_count_of(layout, shape).map_err(|e| e.to_string())?;
            layout
        }
        None => decode::infer_layout(shape, named_classes, end2end).map_err(|e| e.to_string())?,
    };
    Ok(layout)
}

fn build_session(
    env: &ort::environment::Environment,
    options: &DetectorOptions,
    warnings: &mut Vec<String>,
) -> Result<(Session, &'static str), String> {
    let (providers, label) = execution_providers(options, warnings);
    if !providers.is_empty() {
        match commit_session(env, options, &providers) {
            Ok(session) => return Ok((session, label)),
            Err(e) => warnings.push(format!(
                "{label} execution provider failed ({e}); falling back to CPU"
            )),
        }
    }
    commit_session(env, options, &[]).map(|s| (s, "cpu"))
}

fn commit_session(
    env: &ort::environment::Environment,
    options: &DetectorOptions,
    providers: &[ExecutionProviderDispatch],
) -> Result<Session, String> {
    let mut builder = Session::builder(env).map_err(|e| e.to_string())?;
    if options.threads > 0 {
        builder = builder
            .with_intra_threads(options.threads)
            .map_err(|e| e.to_string())?;
    }
    if let Some(spin) = options.spin {
        builder = builder
            .with_intra_op_spinning(spin)
            .map_err(|e| e.to_string())?;
    }
    if !providers.is_empty() {
        builder = builder
            .with_execution_providers(providers)
            .map_err(|e| e.to_string())?;
    }
    builder
        .commit_from_file(&options.model)
        .map_err(|e| e.to_string())
}

/// The providers to register for a choice, with warnings for the ones this ONNX Runtime lacks.
fn execution_providers(
    options: &DetectorOptions,
    warnings: &mut Vec<String>,
) -> (Vec<ExecutionProviderDispatch>, &'static str) {
    let tensorrt = ep::TensorRT::is_available().unwrap_or(false);
    let cuda = ep::CUDA::is_available().unwrap_or(false);
    let mut unavailable = |name: &str| {
        warnings.push(format!(
            "the {name} execution provider is not available in the loaded ONNX Runtime \
             (a GPU build such as the onnxruntime-gpu wheel is needed); falling back to CPU"
        ))
    };
    match options.provider {
        Provider::OpenVino if ep::OpenVINO::is_available().unwrap_or(false) => (
            vec![openvino(options).build().error_on_failure()],
            match options.precision.resolve() {
                Precision::Bf16 => "openvino/bf16",
                Precision::F16 => "openvino/f16",
                Precision::F32 | Precision::Auto => "openvino/f32",
            },
        ),
        Provider::OpenVino => {
            warnings.push(format!(
                "the OpenVINO execution provider is not available in the loaded ONNX Runtime ({}): \
                 an OpenVINO-enabled build is needed (the onnxruntime-openvino wheel, which \
                 scripts/setup.sh --tests links at .ort-openvino/; or name one with the `ort-library` \
                 property or {}, before any other element loads ONNX Runtime); falling back to CPU",
                library::loaded_library().map_or_else(|| "?".into(), |p| p.display().to_string()),
                library::OPENVINO_LIBRARY_ENV,
            ));
            (Vec::new(), "cpu")
        }
        Provider::Cpu => (Vec::new(), "cpu"),
        Provider::Auto if tensorrt => (
            vec![
                ep::TensorRT::default().build().error_on_failure(),
                ep::CUDA::default().build(),
            ],
            "tensorrt",
        ),
        Provider::Auto if cuda => (vec![ep::CUDA::default().build().error_on_failure()], "cuda"),
        Provider::Auto => (Vec::new(), "cpu"),
        Provider::Cuda if cuda => (vec![ep::CUDA::default().build().error_on_failure()], "cuda"),
        Provider::TensorRt if tensorrt => (
            vec![
                ep::TensorRT::default().build().error_on_failure(),
                ep::CUDA::default().build(),
            ],
            "tensorrt",
        ),
        Provider::Cuda => {
            unavailable("CUDA");
            (Vec::new(), "cpu")
        }
        Provider::TensorRt => {
            unavailable("TensorRT");
            (Vec::new(), "cpu")
        }
    }
}

/// The OpenVINO provider for the options: the device, the precision as OpenVINO's inference
/// precision hint for that device (its `load_config`, which unlike the provider's `precision`
/// option accepts bf16 on CPUs), the threads.
fn openvino(options: &DetectorOptions) -> ep::OpenVINO {
    let device = options.openvino_device.as_str();
    let mut provider = ep::OpenVINO::default()
        .with_device_type(device)
        .with_arbitrary_config("load_config", openvino_config(options));
    if options.threads > 0 {
        provider = provider.with_num_threads(options.threads);
    }
    provider
}

/// OpenVINO's `load_config` JSON: the precision hint for the device.
fn openvino_config(options: &DetectorOptions) -> String {
    serde_json::json!({
        options.openvino_device.as_str(): {
            "INFERENCE_PRECISION_HINT": options.precision.hint(),
        }
    })
    .to_string()
}

/// The model's custom metadata; a value that cannot be read (not UTF-8) is left out with a
/// warning.
fn read_metadata(session: &Session, warnings: &mut Vec<String>) -> BTreeMap<String, String> {
    let Ok(metadata) = session.metadata() else {
        return BTreeMap::new();
    };
    let keys = metadata.custom_keys().unwrap_or_default();
    keys.into_iter()
        .filter_map(|key| match metadata.custom(&key) {
            Some(value) => Some((key, value)),
            None => {
                warnings.push(format!(
                    "the model's `{key}` metadata is not valid UTF-8; it is ignored"
                ));
                None
            }
        })
        .collect()
}

/// The single image input: name, channels, height, width.
fn image_input(
    session: &Session,
    metadata: &BTreeMap<String, String>,
    max_pixels: u64,
) -> Result<(String, usize, u32, u32), String> {
    let inputs = session.inputs();
    let [input] = inputs else {
        return Err(format!(
            "the model has {} inputs; expected one image input",
            inputs.len()
        ));
    };
    let not_image = |detail: String| {
        format!(
            "input '{}' is not image-like: {detail}; expected a float32 tensor [1, 3 or 1, H, W]",
            input.name()
        )
    };
    let ValueType::Tensor { ty, shape, .. } = input.dtype() else {
        return Err(not_image("it is not a tensor".into()));
    };
    if *ty != TensorElementType::Float32 {
        return Err(not_image(format!("its element type is {ty:?}")));
    }
    let dims: &[i64] = shape;
    let [batch, channels, height, width] = *dims else {
        return Err(not_image(format!("its shape is {dims:?}")));
    };
    if batch > 1 || !(channels == 1 || channels == 3 || channels == -1) {
        return Err(not_image(format!("its shape is {dims:?}")));
    }
    if height == 0 || width == 0 {
        return Err(not_image(format!(
            "its shape {dims:?} has a dimension of 0"
        )));
    }
    let channels = if channels == 1 { 1 } else { 3 };
    let (height, width, from) = if height > 0 && width > 0 {
        if height > u32::MAX as i64 || width > u32::MAX as i64 {
            return Err(not_image(format!("its shape is {dims:?}")));
        }
        (height as u32, width as u32, "input shape")
    } else {
        match metadata.get("imgsz") {
            Some(text) => {
                let (h, w) = model_meta::parse_image_size(text)
                    .map_err(|e| format!("dynamic input size and {e}"))?;
                (h, w, "imgsz metadata")
            }
            None => (FALLBACK_IMAGE_SIZE, FALLBACK_IMAGE_SIZE, "default size"),
        }
    };
    let pixels = height as u64 * width as u64;
    if pixels > max_pixels {
        return Err(format!(
            "its input of {height}x{width} ({from}) is {pixels} pixels, more than max-input-pixels \
             ({max_pixels}); raise max-input-pixels to load it ({} MiB of input tensor)",
            (pixels * channels as u64 * 4) >> 20
        ));
    }
    Ok((input.name().to_string(), channels, height, width))
}

fn class_names(
    labels: Option<&Path>,
    metadata: &BTreeMap<String, String>,
    warnings: &mut Vec<String>,
) -> Result<Vec<String>, RuntimeError> {
    if let Some(path) = labels {
        let text = crate::files::read_text(path, MAX_LABELS_BYTES).map_err(|reason| {
            RuntimeError::Labels {
                path: path.to_path_buf(),
                reason,
            }
        })?;
        let names = model_meta::parse_labels(&text);
        if names.is_empty() {
            return Err(RuntimeError::Labels {
                path: path.to_path_buf(),
                reason: "no class names in the file".into(),
            });
        }
        if let Some(Ok(model_names)) = metadata.get("names").map(|t| model_meta::parse_names(t))
            && model_names.len() != names.len()
        {
            warnings.push(format!(
                "the labels file {} names {} classes but the model's `names` metadata {}; the labels file is used",
                path.display(),
                names.len(),
                model_names.len()
            ));
        }
        return Ok(names);
    }
    // Unparsable `names` metadata is not fatal: classes then get default names.
    Ok(match metadata.get("names") {
        Some(text) => model_meta::parse_names(text).unwrap_or_else(|e| {
            warnings.push(format!(
                "the model's `names` metadata is ignored ({e}); classes are named class<N>"
            ));
            Vec::new()
        }),
        None => Vec::new(),
    })
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex SHA-256 of a file.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path)?;
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_precision_reaches_openvino_as_its_hint_for_the_device() {
        let config = |device, precision| {
            let options = DetectorOptions {
                provider: Provider::OpenVino,
                openvino_device: device,
                precision,
                ..Default::default()
            };
            serde_json::from_str::<serde_json::Value>(&openvino_config(&options)).unwrap()
        };
        assert_eq!(
            config(OpenVinoDevice::Cpu, Precision::Bf16),
            serde_json::json!({"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}})
        );
        assert_eq!(
            config(OpenVinoDevice::Gpu, Precision::F16),
            serde_json::json!({"GPU": {"INFERENCE_PRECISION_HINT": "f16"}})
        );
        assert_eq!(
            config(OpenVinoDevice::Npu, Precision::F32)["NPU"]["INFERENCE_PRECISION_HINT"],
            "f32"
        );
        let auto = if super::super::cpu_has_bf16() {
            "bf16"
        } else {
            "f32"
        };
        assert_eq!(
            config(OpenVinoDevice::Auto, Precision::Auto)["AUTO"]["INFERENCE_PRECISION_HINT"],
            auto
        );
    }
}
