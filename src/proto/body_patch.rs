//! `body-patch`: a JSON Patch (RFC 6902) that a publish applies to a held long-poll's original
//! body (Pushpin's `applyBodyPatch`), with bounded work.
//!
//! A patch is small but its result need not be: `{"op": "copy", "from": "", "path": "/a"}`
//! doubles the document, so 25 such operations (under a kilobyte of publish) make a 1 KB body
//! 32 GB. The result is therefore bounded while it is built: before each operation the size of the
//! compact JSON after it is worked out from the sizes of what the operation adds and removes (an
//! upper bound: keys removed are not subtracted), and the patch stops at the first operation that
//! would pass `bytes_max`, before anything is copied. The number of operations is bounded too
//! (`ops_max`), so the work per subscriber is at most about `ops_max` times `bytes_max`.
//!
//! Differences from Pushpin, which has neither limit: a patch over a limit gives an empty body, as
//! any patch that fails does there. Operations are applied one by one without an undo log (a
//! failed patch's document is dropped, so there is nothing to undo).

use json_patch::PatchOperation;
use serde::Deserialize;
use serde_json::Value;

/// How much a patch may do.
#[derive(Debug, Clone, Copy)]
pub struct PatchLimits {
    /// Operations in one patch.
    pub ops_max: usize,
    /// Size of the patched body (compact JSON, without the trailing newline kept from the
    /// original), in bytes.
    pub bytes_max: usize,
}

/// Why a patch gave no body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    #[error("the original body is not a JSON object or array")]
    NotJson,
    #[error("invalid patch: {0}")]
    Invalid(String),
    #[error("{ops} operations, over the limit of {max}")]
    TooManyOps { ops: usize, max: usize },
    #[error("operation {op} would make the body larger than {max} bytes")]
    TooLarge { op: usize, max: usize },
    #[error("{0}")]
    Failed(String),
}

impl PatchError {
    /// Whether a limit (rather than a bad patch or body) stopped it.
    pub fn is_limit(&self) -> bool {
        matches!(
            self,
            PatchError::TooManyOps { .. } | PatchError::TooLarge { .. }
        )
    }
}

/// Applies `patch` to `original`: compact JSON, keeping the original's trailing newline.
pub fn apply(original: &[u8], patch: &Value, limits: &PatchLimits) -> Result<Vec<u8>, PatchError> {
    let ops = patch.as_array().map_or(0, Vec::len);
    if ops > limits.ops_max {
        let max = limits.ops_max;
        return Err(PatchError::TooManyOps { ops, max });
    }
    let mut doc = match serde_json::from_slice::<Value>(original) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
        _ => return Err(PatchError::NotJson),
    };
    let patch =
        json_patch::Patch::deserialize(patch).map_err(|e| PatchError::Invalid(e.to_string()))?;
    let mut size = json_len(&doc);
    for (op, operation) in patch.0.iter().enumerate() {
        let (added, removed) = growth(&doc, operation);
        let next = (size + added).saturating_sub(removed);
        if next > limits.bytes_max {
            let max = limits.bytes_max;
            return Err(PatchError::TooLarge { op, max });
        }
        json_patch::patch_unsafe(&mut doc, std::slice::from_ref(operation))
            .map_err(|e| PatchError::Failed(e.to_string()))?;
        size = next;
    }
    let mut out = serde_json::to_vec(&doc).map_err(|e| PatchError::Failed(e.to_string()))?;
    if original.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    } else if original.ends_with(b"\n") {
        out.push(b'\n');
    }
    Ok(out)
}

/// Bytes an operation may add to the compact JSON, and bytes it surely removes. Added is an
/// upper bound and removed a lower one, so the running size never falls below the real one.
fn growth(doc: &Value, op: &PatchOperation) -> (usize, usize) {
    let len_at = |path: &str| doc.pointer(path).map_or(0, json_len);
    match op {
        PatchOperation::Add(a) => (
            json_len(&a.value) + member_len(&a.path),
            replaced_len(doc, &a.path),
        ),
        PatchOperation::Copy(c) => (
            len_at(c.from.as_str()) + member_len(&c.path),
            replaced_len(doc, &c.path),
        ),
        PatchOperation::Replace(r) => (json_len(&r.value), len_at(r.path.as_str())),
        PatchOperation::Remove(r) => (0, len_at(r.path.as_str())),
        // The value only changes place: at most its new key is added (what the move replaces is
        // not subtracted, as it may be the value being moved).
        PatchOperation::Move(m) => (member_len(&m.path), 0),
        PatchOperation::Test(_) => (0, 0),
    }
}

/// What putting a value at `path` removes: the whole document for the root, the old member
/// (key and value) when the parent is an object that has the key, else nothing (an array insert).
fn replaced_len(doc: &Value, path: &json_patch::jsonptr::Pointer) -> usize {
    let Some((parent, last)) = path.split_back() else {
        return json_len(doc);
    };
    match doc.pointer(parent.as_str()) {
        Some(Value::Object(map)) => map
            .get(last.decoded().as_ref())
            .map_or(0, |old| json_len(old) + member_len(path)),
        _ => 0,
    }
}

/// The bytes a new member at `path` costs besides its value: its key, `:` and a `,` (an array
/// element costs only the comma, but counting the key too keeps the bound simple and safe).
fn member_len(path: &json_patch::jsonptr::Pointer) -> usize {
    path.last()
        .map_or(0, |key| str_json_len(key.decoded().as_ref()) + 2)
}

/// Length of `value` as compact JSON, without building it.
pub fn json_len(value: &Value) -> usize {
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX / 2,
    }
}

fn str_json_len(s: &str) -> usize {
    let mut counter = Counter(0);
    match serde_json::to_writer(&mut counter, s) {
        Ok(()) => counter.0,
        Err(_) => usize::MAX / 2,
    }
}

/// An `io::Write` that only counts.
struct Counter(usize);

impl std::io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ROOMY: PatchLimits = PatchLimits {
        ops_max: 100,
        bytes_max: 1_000_000,
    };

    #[test]
    fn applies_and_keeps_the_newline() {
        let original = b"{\"count\":1,\"items\":[\"a\"]}\n";
        let patch = json!([
            {"op": "replace", "path": "/count", "value": 2},
            {"op": "add", "path": "/items/-", "value": "b"}
        ]);
        assert_eq!(
            apply(original, &patch, &ROOMY).unwrap(),
            b"{\"count\":2,\"items\":[\"a\",\"b\"]}\n"
        );
        let crlf = apply(
            b"[]\r\n",
            &json!([{"op": "add", "path": "/0", "value": 1}]),
            &ROOMY,
        );
        assert_eq!(crlf.unwrap(), b"[1]\r\n");
    }

    #[test]
    fn failures_are_errors() {
        let patch = json!([{"op": "remove", "path": "/nope"}]);
        assert!(matches!(
            apply(b"{}", &patch, &ROOMY),
            Err(PatchError::Failed(_))
        ));
        assert_eq!(
            apply(b"not json", &json!([]), &ROOMY),
            Err(PatchError::NotJson)
        );
        assert_eq!(apply(b"42", &json!([]), &ROOMY), Err(PatchError::NotJson));
        let bad = json!([{"op": "frobnicate", "path": "/a"}]);
        assert!(matches!(
            apply(b"{}", &bad, &ROOMY),
            Err(PatchError::Invalid(_))
        ));
        // A failing operation after good ones: no partial result.
        let late = json!([{"op": "add", "path": "/a", "value": 1}, {"op": "test", "path": "/a", "value": 2}]);
        assert!(apply(b"{}", &late, &ROOMY).is_err());
    }

    /// Each op copies the whole document into a new member of itself: 25 of them (a 948-byte
    /// publish) would make a 27-byte body ~1 GB.
    fn doubling_patch(ops: usize) -> Value {
        let op = |i| json!({"op": "copy", "from": "", "path": format!("/a{i}")});
        Value::Array((0..ops).map(op).collect())
    }

    #[test]
    fn a_doubling_patch_stops_at_the_size_limit() {
        let original = b"{\"hello\":\"world, 27 bytes\"}";
        let limits = PatchLimits {
            ops_max: 100,
            bytes_max: 100_000,
        };
        let err = apply(original, &doubling_patch(25), &limits).unwrap_err();
        assert!(err.is_limit());
        let PatchError::TooLarge { op, max } = err else {
            panic!("{err:?}");
        };
        assert_eq!(max, 100_000);
        // 27 bytes doubled (plus a key) per op: the 12th op would pass 100 000.
        assert!((10..=13).contains(&op), "stopped at op {op}");
        // Under the limit it is applied, and the estimate matched the real size.
        let ok = apply(original, &doubling_patch(op), &limits).unwrap();
        assert!(
            ok.len() <= 100_000 && ok.len() > 100_000 / 4,
            "{}",
            ok.len()
        );
    }

    #[test]
    fn too_many_operations_are_refused_before_any_work() {
        let limits = PatchLimits {
            ops_max: 3,
            bytes_max: 1_000_000,
        };
        let test = json!({"op": "test", "path": "", "value": {}});
        let patch = Value::Array(vec![test; 4]);
        assert_eq!(
            apply(b"{}", &patch, &limits),
            Err(PatchError::TooManyOps { ops: 4, max: 3 })
        );
    }

    #[test]
    fn the_running_size_is_an_upper_bound() {
        // Many shapes of operation, checked against the real size after each step.
        let original = br#"{"a":{"x":[1,2,3],"y":"text"},"b":[{"k":"v"}],"c\"q":null}"#;
        let steps = json!([
            {"op": "add", "path": "/d", "value": {"n": [1, 2]}},
            {"op": "add", "path": "/a", "value": "replaced"},
            {"op": "add", "path": "/b/0", "value": "first"},
            {"op": "copy", "from": "/b", "path": "/b/-"},
            {"op": "copy", "from": "/d", "path": "/d"},
            {"op": "move", "from": "/d", "path": "/e~1f"},
            {"op": "move", "from": "/e~1f", "path": "/e~1f"},
            {"op": "replace", "path": "/b", "value": []},
            {"op": "remove", "path": "/c\"q"},
            {"op": "copy", "from": "", "path": "/g"},
            {"op": "add", "path": "", "value": [1]}
        ]);
        let mut doc: Value = serde_json::from_slice(original).unwrap();
        let mut size = json_len(&doc);
        for op in steps.as_array().unwrap() {
            let op: PatchOperation = serde_json::from_value(op.clone()).unwrap();
            let (added, removed) = growth(&doc, &op);
            size = (size + added).saturating_sub(removed);
            json_patch::patch_unsafe(&mut doc, std::slice::from_ref(&op)).unwrap();
            let real = serde_json::to_vec(&doc).unwrap().len();
            assert!(size >= real, "after {op:?}: estimate {size} < real {real}");
            assert!(
                size <= real + 64,
                "after {op:?}: estimate {size} drifted from {real}"
            );
        }
    }

    /// A move onto itself does not shrink the estimate (it would let later copies pass the
    /// limit unseen).
    #[test]
    fn moves_and_copies_onto_themselves_cannot_hide_growth() {
        let limits = PatchLimits {
            ops_max: 100,
            bytes_max: 10_000,
        };
        let mut ops = vec![json!({"op": "add", "path": "/a", "value": "x".repeat(1000)})];
        ops.extend((0..40).map(|_| json!({"op": "move", "from": "/a", "path": "/a"})));
        ops.extend((0..40).map(|_| json!({"op": "copy", "from": "/a", "path": "/a"})));
        ops.extend((0..15).map(|i| json!({"op": "copy", "from": "/a", "path": format!("/c{i}")})));
        let err = apply(b"{}", &Value::Array(ops), &limits).unwrap_err();
        assert!(matches!(err, PatchError::TooLarge { .. }), "{err:?}");
    }
}
