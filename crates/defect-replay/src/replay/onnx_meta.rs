// SPDX-License-Identifier: MIT OR Apache-2.0
//! The `metadata_props` of an ONNX file, read from its protobuf without loading the model, so
//! that `defect-replay` knows the model's task (and so which ground truth to expect) before
//! anything slow runs. Only the top level of `ModelProto` is walked; the graph is skipped.

/// Reads a protobuf varint at `*at`.
fn varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Walks the fields of a message: (field number, wire type, payload for length-delimited).
fn fields(data: &[u8], mut visit: impl FnMut(u64, &[u8])) -> Option<()> {
    let mut at = 0;
    while at < data.len() {
        let key = varint(data, &mut at)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(data, &mut at)?;
            }
            1 => at = at.checked_add(8)?,
            2 => {
                let len = usize::try_from(varint(data, &mut at)?).ok()?;
                let end = at.checked_add(len)?;
                visit(field, data.get(at..end)?);
                at = end;
            }
            5 => at = at.checked_add(4)?,
            _ => return None,
        }
    }
    (at == data.len()).then_some(())
}

/// The model's metadata (`ModelProto.metadata_props`, field 14) as key/value pairs; None when
/// the bytes are not a protobuf message.
pub fn metadata(model: &[u8]) -> Option<Vec<(String, String)>> {
    let mut props = Vec::new();
    fields(model, |field, payload| {
        if field == 14 {
            let (mut key, mut value) = (String::new(), String::new());
            let _ = fields(payload, |f, bytes| match f {
                1 => key = String::from_utf8_lossy(bytes).into_owned(),
                2 => value = String::from_utf8_lossy(bytes).into_owned(),
                _ => {}
            });
            props.push((key, value));
        }
    })?;
    Some(props)
}

/// The `task` metadata of an ONNX file (`detect`, `classify`, `anomaly`...), None when the
/// file has none or cannot be read.
pub fn task_of(path: &std::path::Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    metadata(&bytes)?
        .into_iter()
        .find(|(k, _)| k == "task")
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_of_a_hand_made_model_proto() {
        // ir_version 8, graph (field 7) with junk, two metadata_props, a fixed32 field.
        let prop = |k: &str, v: &str| {
            let mut p = vec![0x0a, k.len() as u8];
            p.extend(k.as_bytes());
            p.extend([0x12, v.len() as u8]);
            p.extend(v.as_bytes());
            let mut out = vec![(14 << 3 | 2) as u8, p.len() as u8];
            out.extend(p);
            out
        };
        let mut model = vec![0x08, 0x08, 0x3a, 0x03, 0xff, 0xff, 0x00];
        model.extend(prop("task", "anomaly"));
        model.extend(prop("names", "{0: 'a'}"));
        model.extend([(9 << 3 | 5) as u8, 1, 2, 3, 4]);
        assert_eq!(
            metadata(&model).unwrap(),
            vec![
                ("task".to_string(), "anomaly".to_string()),
                ("names".to_string(), "{0: 'a'}".to_string())
            ]
        );
        assert_eq!(metadata(&[0x3a, 0x10, 0x00]), None);
        let root = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."));
        assert_eq!(
            task_of(&root.join("models/surface-anomaly.onnx")).as_deref(),
            Some("anomaly")
        );
        assert_eq!(
            task_of(&root.join("models/neu-classifier.onnx")).as_deref(),
            Some("classify")
        );
    }
}
