// SPDX-License-Identifier: MIT OR Apache-2.0
//! Whether a quantised ONNX model has 8-bit weights that can saturate ONNX Runtime's u8 x s8
//! kernels on CPUs without VNNI (see [`super::cpu`]).
//!
//! Reads the model's protobuf directly (a small wire-format walker, no ONNX library): the
//! graph's nodes and initializers. A weight is an int8 initializer that a convolution or matrix
//! product takes, either dequantised first (QDQ: `DequantizeLinear` -> `Conv`/`MatMul`/`Gemm`)
//! or directly (`QLinearConv`, `QLinearMatMul`, `ConvInteger`, `MatMulInteger`). It can saturate
//! when some |w| > 64 (two products 255 x |w| then exceed 16 bits); `reduce_range` copies keep
//! |w| <= 64, u8 weights are widened before the products, and float models have none.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::cpu::CpuDescription;

/// Largest |w| of an int8 weight whose pair sums cannot saturate 16 bits: 2 x 255 x 64 < 32,767.
pub const MAX_SAFE_INT8_WEIGHT: u8 = 64;

/// What [`inspect`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuantSummary {
    /// Int8 weights of convolutions and matrix products.
    pub int8_weights: usize,
    /// Of those, the ones with some |w| above [`MAX_SAFE_INT8_WEIGHT`] (weights kept in an
    /// external data file count here: they cannot be checked).
    pub full_range_weights: usize,
    /// The largest |w| seen.
    pub max_abs_weight: u8,
    /// Weights stored as u8 (u8 x u8 kernels: no saturation).
    pub uint8_weights: usize,
}

impl QuantSummary {
    /// Whether the u8 x s8 kernels without VNNI can saturate on this model.
    pub fn can_saturate(&self) -> bool {
        self.full_range_weights > 0
    }
}

/// Why the model at `path` can compute wrong results on `cpu` with this `provider` (ONNX
/// Runtime's own name for it, `cpu` for its CPU provider), or None: the message names the
/// model, the weights, the CPU and its flags, the kernel, and what to do. Only the CPU provider
/// on a CPU whose kernels saturate reads the model; a model that cannot be read is not a risk
/// here (loading it has already succeeded or failed on its own).
pub fn int8_risk(path: &Path, provider: &str, cpu: &CpuDescription) -> Option<String> {
    let kernel = cpu.u8s8_kernel();
    if provider != "cpu" || !kernel.saturates {
        return None;
    }
    let summary = inspect(&std::fs::read(path).ok()?).ok()?;
    summary.can_saturate().then(|| {
        format!(
            "model {} has 8-bit weights that use the full int8 range (largest |w| {} in {} of \
             its {} int8 convolution/matrix weights); on this CPU, {}, ONNX Runtime's u8 x s8 \
             kernels are {}, so results can be wrong (boxes lost, moved or scored differently). \
             Use the fp32 model, a copy quantised with reduce_range (7-bit weights, as \
             training/quantize.py makes) or u8 weights, or a CPU with AVX512-VNNI, AVX-VNNI or \
             AMX-INT8",
            path.display(),
            summary.max_abs_weight,
            summary.full_range_weights,
            summary.int8_weights,
            cpu.summary(),
            kernel.name
        )
    })
}

/// ONNX TensorProto data types.
const UINT8: u64 = 2;
const INT8: u64 = 3;

#[derive(Default)]
struct Tensor {
    data_type: u64,
    max_abs: u8,
    external: bool,
}

#[derive(Default)]
struct Node {
    op_type: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
}

/// Inspects an ONNX model (its bytes). An error says why the bytes are not a model.
pub fn inspect(model: &[u8]) -> Result<QuantSummary, String> {
    let mut graph = None;
    for field in Fields::new(model) {
        if let (7, Value::Bytes(bytes)) = field? {
            graph = Some(bytes);
        }
    }
    let graph = graph.ok_or("no graph in the model")?;
    let (mut nodes, mut tensors) = (Vec::new(), HashMap::new());
    for field in Fields::new(graph) {
        match field? {
            (1, Value::Bytes(bytes)) => nodes.push(node(bytes)?),
            (5, Value::Bytes(bytes)) => {
                let (name, tensor) = tensor(bytes)?;
                tensors.insert(name, tensor);
            }
            _ => {}
        }
    }
    let mut consumers: HashMap<&str, Vec<&str>> = HashMap::new();
    for n in &nodes {
        for input in &n.inputs {
            consumers.entry(input).or_default().push(&n.op_type);
        }
    }
    let mut weights = HashSet::new();
    for n in &nodes {
        let index = match n.op_type.as_str() {
            "DequantizeLinear"
                if n.outputs.iter().any(|o| {
                    consumers.get(o.as_str()).is_some_and(|c| {
                        c.iter()
                            .any(|op| matches!(*op, "Conv" | "ConvTranspose" | "MatMul" | "Gemm"))
                    })
                }) =>
            {
                0
            }
            "QLinearConv" | "QLinearMatMul" => 3,
            "ConvInteger" | "MatMulInteger" => 1,
            _ => continue,
        };
        if let Some(input) = n.inputs.get(index) {
            weights.insert(input.as_str());
        }
    }
    let mut summary = QuantSummary::default();
    for name in weights {
        let Some(t) = tensors.get(name) else { continue };
        match t.data_type {
            INT8 => {
                summary.int8_weights += 1;
                summary.max_abs_weight = summary.max_abs_weight.max(t.max_abs);
                if t.external || t.max_abs > MAX_SAFE_INT8_WEIGHT {
                    summary.full_range_weights += 1;
                }
            }
            UINT8 => summary.uint8_weights += 1,
            _ => {}
        }
    }
    Ok(summary)
}

fn node(bytes: &[u8]) -> Result<Node, String> {
    let mut n = Node::default();
    for field in Fields::new(bytes) {
        match field? {
            (1, Value::Bytes(b)) => n.inputs.push(String::from_utf8_lossy(b).into_owned()),
            (2, Value::Bytes(b)) => n.outputs.push(String::from_utf8_lossy(b).into_owned()),
            (4, Value::Bytes(b)) => n.op_type = String::from_utf8_lossy(b).into_owned(),
            _ => {}
        }
    }
    Ok(n)
}

fn tensor(bytes: &[u8]) -> Result<(String, Tensor), String> {
    let (mut name, mut t) = (String::new(), Tensor::default());
    let mut data: Option<&[u8]> = None;
    let mut int32_data = Vec::new();
    for field in Fields::new(bytes) {
        match field? {
            (2, Value::Varint(v)) => t.data_type = v,
            (8, Value::Bytes(b)) => name = String::from_utf8_lossy(b).into_owned(),
            (9, Value::Bytes(b)) => data = Some(b),
            // int32_data, packed or not: int8 values are stored one per int32.
            (5, Value::Bytes(b)) => {
                let mut at = 0;
                while at < b.len() {
                    int32_data.push(varint(b, &mut at)?);
                }
            }
            (5, Value::Varint(v)) => int32_data.push(v),
            (14, Value::Varint(1)) => t.external = true,
            _ => {}
        }
    }
    if t.data_type == INT8 {
        let raw = data.unwrap_or_default().iter().map(|&b| b as i8 as i32);
        let listed = int32_data.iter().map(|&v| v as i64 as i32);
        t.max_abs = raw
            .chain(listed)
            .map(|v| v.unsigned_abs().min(128) as u8)
            .max()
            .unwrap_or(0);
    }
    Ok((name, t))
}

enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// The fields of one protobuf message: (field number, value).
struct Fields<'a> {
    bytes: &'a [u8],
    at: usize,
    failed: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            at: 0,
            failed: false,
        }
    }

    fn next_field(&mut self) -> Result<(u64, Value<'a>), String> {
        let key = varint(self.bytes, &mut self.at)?;
        let value = match key & 7 {
            0 => Value::Varint(varint(self.bytes, &mut self.at)?),
            1 => self.skip(8)?,
            2 => {
                let len = varint(self.bytes, &mut self.at)?;
                let len = usize::try_from(len).map_err(|_| "length out of range")?;
                let end = self
                    .at
                    .checked_add(len)
                    .filter(|&e| e <= self.bytes.len())
                    .ok_or("a field runs past the end of the file")?;
                let bytes = &self.bytes[self.at..end];
                self.at = end;
                Value::Bytes(bytes)
            }
            5 => self.skip(4)?,
            other => return Err(format!("protobuf wire type {other} not expected")),
        };
        Ok((key >> 3, value))
    }

    fn skip(&mut self, n: usize) -> Result<Value<'a>, String> {
        if self.bytes.len() - self.at < n {
            return Err("a field runs past the end of the file".into());
        }
        self.at += n;
        Ok(Value::Fixed)
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.at >= self.bytes.len() {
            return None;
        }
        let field = self.next_field();
        self.failed = field.is_err();
        Some(field)
    }
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or("truncated protobuf varint")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err("protobuf varint longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    fn bytes_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
        put_varint(out, field << 3 | 2);
        put_varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    fn node(op: &str, inputs: &[&str], outputs: &[&str]) -> Vec<u8> {
        let mut n = Vec::new();
        for i in inputs {
            bytes_field(&mut n, 1, i.as_bytes());
        }
        for o in outputs {
            bytes_field(&mut n, 2, o.as_bytes());
        }
        bytes_field(&mut n, 4, op.as_bytes());
        n
    }

    fn initializer(name: &str, data_type: u64, raw: &[u8]) -> Vec<u8> {
        let mut t = Vec::new();
        put_varint(&mut t, 1 << 3);
        put_varint(&mut t, raw.len() as u64);
        put_varint(&mut t, 2 << 3);
        put_varint(&mut t, data_type);
        bytes_field(&mut t, 8, name.as_bytes());
        bytes_field(&mut t, 9, raw);
        t
    }

    /// A QDQ model: x -> DQ(w) -> Conv, plus an int8 constant that feeds an Add (not a weight).
    fn model(weight_type: u64, weight: &[u8]) -> Vec<u8> {
        let mut g = Vec::new();
        bytes_field(
            &mut g,
            1,
            &node("DequantizeLinear", &["w", "s", "z"], &["w_f"]),
        );
        bytes_field(&mut g, 1, &node("Conv", &["x", "w_f"], &["y"]));
        bytes_field(&mut g, 1, &node("DequantizeLinear", &["c", "s"], &["c_f"]));
        bytes_field(&mut g, 1, &node("Add", &["y", "c_f"], &["out"]));
        bytes_field(&mut g, 5, &initializer("w", weight_type, weight));
        bytes_field(&mut g, 5, &initializer("c", INT8, &[0x81, 0x7f]));
        let mut m = Vec::new();
        put_varint(&mut m, 1 << 3); // ir_version
        put_varint(&mut m, 8);
        bytes_field(&mut m, 7, &g);
        m
    }

    #[test]
    fn full_range_int8_weights_can_saturate() {
        let s = inspect(&model(INT8, &[1, 0x90, 5])).unwrap(); // 0x90 = -112
        assert_eq!(s.int8_weights, 1);
        assert_eq!(s.max_abs_weight, 112);
        assert!(s.can_saturate());
    }

    #[test]
    fn seven_bit_and_uint8_weights_cannot() {
        let s = inspect(&model(INT8, &[64, 0xc0, 3])).unwrap(); // 64, -64
        assert_eq!((s.int8_weights, s.max_abs_weight), (1, 64));
        assert!(!s.can_saturate(), "{s:?}");
        let s = inspect(&model(UINT8, &[255, 0])).unwrap();
        assert_eq!((s.int8_weights, s.uint8_weights), (0, 1));
        assert!(!s.can_saturate());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(inspect(&[0x3a, 0xff, 0xff, 0xff, 0x0f]).is_err());
        assert!(inspect(&[0xff; 12]).is_err());
        assert!(inspect(b"").is_err());
    }

    #[test]
    fn the_bundled_models() {
        let read =
            |p: &str| std::fs::read(format!("{}/../../{p}", env!("CARGO_MANIFEST_DIR"))).unwrap();
        let fp32 = inspect(&read("models/surface-defects.onnx")).unwrap();
        assert_eq!(fp32.int8_weights + fp32.uint8_weights, 0, "{fp32:?}");
        let bytes = read("models/surface-defects-int8.onnx");
        let int8 = inspect(&bytes).unwrap();
        assert!(int8.int8_weights > 10, "{int8:?}");
        // The copy's `quantization` metadata says how its weights were made; they agree.
        let seven_bit = bytes.windows(11).any(|w| w == b"7-bit range");
        assert_eq!(int8.can_saturate(), !seven_bit, "{int8:?}");
    }
}
