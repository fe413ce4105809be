//! Quantities as Kubernetes writes them, for messages and status: the
//! allocator's units (millicores, bytes) back to `500m` and `4Gi`.

/// Millicores as Kubernetes writes a CPU quantity: `2`, `500m`.
pub fn format_millis(milli: u64) -> String {
    if milli.is_multiple_of(1000) {
        format!("{}", milli / 1000)
    } else {
        format!("{milli}m")
    }
}

/// Bytes as Kubernetes writes a binary quantity: the largest power-of-1024
/// suffix that holds it exactly (`4Gi`, `128Mi`, `1536Ki`), else the number.
pub fn format_bytes(bytes: u64) -> String {
    const SUFFIXES: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    let mut n = bytes;
    let mut suffix = "";
    for s in SUFFIXES {
        if n == 0 || !n.is_multiple_of(1024) {
            break;
        }
        n /= 1024;
        suffix = s;
    }
    format!("{n}{suffix}")
}
