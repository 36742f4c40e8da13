//! Reading the Prometheus text format holdfast's `/metrics` writes: samples with labels, and
//! the declared type of each family. Enough for `holdfast status` and the dashboard test; not a
//! general exposition-format parser (no exemplars, no OpenMetrics).

use std::collections::{BTreeSet, HashMap};

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Labels,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A whole `/metrics` answer.
#[derive(Debug, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    /// Family name → `counter`, `gauge`, `histogram`, ... from the `# TYPE` lines.
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// Parses the text; a line that is not a comment, blank or a valid sample is an error
    /// naming its number.
    pub fn parse(text: &str) -> Result<Exposition, String> {
        let mut out = Exposition::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut parts = rest.split_whitespace();
                if let (Some(name), Some(kind)) = (parts.next(), parts.next()) {
                    out.types.insert(name.to_string(), kind.to_string());
                }
            } else if !line.is_empty() && !line.starts_with('#') {
                let sample = parse_sample(line).map_err(|e| format!("line {}: {e}", i + 1))?;
                out.samples.push(sample);
            }
        }
        Ok(out)
    }

    /// Samples named `name` whose labels include every `(label, value)` of `matching`.
    pub fn select<'a>(
        &'a self,
        name: &'a str,
        matching: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples
            .iter()
            .filter(move |s| s.name == name && matching.iter().all(|(k, v)| s.label(k) == Some(*v)))
    }

    /// The sum over the selected samples; None when there are none (the metric is absent).
    pub fn sum(&self, name: &str, matching: &[(&str, &str)]) -> Option<f64> {
        self.select(name, matching)
            .map(|s| s.value)
            .fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
    }

    /// Every value `label` takes on samples named `name`.
    pub fn label_values(&self, name: &str, label: &str) -> BTreeSet<String> {
        self.select(name, &[])
            .filter_map(|s| s.label(label).map(str::to_string))
            .collect()
    }

    /// The names of every sample present (histograms as their `_bucket`, `_sum`, `_count`).
    pub fn sample_names(&self) -> BTreeSet<&str> {
        self.samples.iter().map(|s| s.name.as_str()).collect()
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("invalid metric name {name:?}"));
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(body) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(body)?;
        labels = parsed;
        rest = after;
    }
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("no value")
        .and_then(|v| parse_value(v).ok_or("invalid value"))?;
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// A sample's labels, in order.
type Labels = Vec<(String, String)>;

/// `k="v",k2="v2"}` → the pairs and what follows the closing brace.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([' ', ',']);
        if let Some(after) = s.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = s.find('=').ok_or("label without '='")?;
        let key = s[..eq].trim();
        if !is_metric_name(key) || key.contains(':') {
            return Err(format!("invalid label name {key:?}"));
        }
        let quoted = s[eq + 1..].trim_start();
        let body = quoted.strip_prefix('"').ok_or("label value not quoted")?;
        let (value, used) = unescape(body)?;
        labels.push((key.to_string(), value));
        s = &body[used..];
    }
}

/// A label value up to its closing quote: the value and the bytes used (quote included).
fn unescape(s: &str) -> Result<(String, usize), String> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, c @ ('\\' | '"'))) => out.push(c),
                _ => return Err("bad escape in a label value".into()),
            },
            c => out.push(c),
        }
    }
    Err("unterminated label value".into())
}

fn parse_value(v: &str) -> Option<f64> {
    match v {
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => v.parse().ok(),
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP holdfast_connections Open client connections by kind.\n\
        # TYPE holdfast_connections gauge\n\
        holdfast_connections{worker=\"0\",kind=\"http\"} 2\n\
        holdfast_connections{worker=\"1\",kind=\"http\"} 3\n\
        holdfast_connections{worker=\"0\",kind=\"stream\"} 1\n\
        # TYPE holdfast_publish_to_write_seconds histogram\n\
        holdfast_publish_to_write_seconds_bucket{worker=\"0\",le=\"+Inf\"} 4\n\
        holdfast_publishes_received_total 7 1700000000000\n\
        odd{v=\"a \\\"quoted\\\" \\\\ value\"} NaN\n";

    #[test]
    fn parses_samples_labels_and_types() {
        let e = Exposition::parse(TEXT).unwrap();
        assert_eq!(e.samples.len(), 6);
        assert_eq!(e.sum("holdfast_connections", &[]), Some(6.0));
        assert_eq!(
            e.sum("holdfast_connections", &[("kind", "http")]),
            Some(5.0)
        );
        assert_eq!(
            e.sum("holdfast_connections", &[("kind", "websocket")]),
            None
        );
        assert_eq!(e.sum("holdfast_publishes_received_total", &[]), Some(7.0));
        assert_eq!(e.types["holdfast_publish_to_write_seconds"], "histogram");
        let le = e.label_values("holdfast_publish_to_write_seconds_bucket", "le");
        assert_eq!(le.into_iter().collect::<Vec<_>>(), ["+Inf"]);
        let odd = e.select("odd", &[]).next().unwrap();
        assert_eq!(odd.label("v"), Some("a \"quoted\" \\ value"));
        assert!(odd.value.is_nan());
    }

    #[test]
    fn bad_lines_are_errors_naming_the_line() {
        for bad in [
            "x{a=\"1\" 2",
            "x{a=1} 2",
            "x{a=\"1\"}",
            "x nope",
            "9x 1",
            "x{a=\"\\q\"} 1",
        ] {
            let err = Exposition::parse(&format!("# ok\n{bad}\n")).unwrap_err();
            assert!(err.starts_with("line 2:"), "{bad}: {err}");
        }
    }
}
