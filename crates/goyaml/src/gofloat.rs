//! Numbers as Go prints them: `strconv.FormatFloat(f, 'g', -1, bits)` (go-yaml's emitter,
//! and `sigs.k8s.io/yaml` for float mapping keys with 32 bits), and the JSON number
//! `encoding/json` writes for a float64, read back as `serde_json` would.

use serde_json::Number;

/// The shortest decimal digits that read back as `x`, and the position of the decimal
/// point relative to them (Go's `decimalSlice.dp`): `x = 0.DIGITS × 10^dp`.
fn shortest(sci: &str) -> (Vec<u8>, i32) {
    // `sci` is Rust's shortest round-trip form in `{:e}`: "-1.2345e-7", "5e0".
    let sci = sci.trim_start_matches('-');
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    (digits, exp + 1)
}

/// `strconv.FormatFloat(x, 'g', -1, 64)`, or with 32 bits when `single`.
pub fn format_g(x: f64, single: bool) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let neg = x.is_sign_negative();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if x == 0.0 {
        out.push('0');
        return out;
    }
    let sci = if single {
        format!("{:e}", x as f32)
    } else {
        format!("{x:e}")
    };
    if single && (x as f32).is_infinite() {
        return if x > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    let (digits, dp) = shortest(&sci);
    let nd = digits.len() as i32;
    let exp = dp - 1;
    if !(-4..6).contains(&exp) {
        // %e with every significant digit.
        out.push(digits[0] as char);
        if nd > 1 {
            out.push('.');
            out.extend(digits[1..].iter().map(|&d| d as char));
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let e = exp.unsigned_abs();
        if e < 10 {
            out.push('0');
        }
        out.push_str(&e.to_string());
        return out;
    }
    // %f with as many decimals as there are digits after the point.
    if dp > 0 {
        for i in 0..dp {
            out.push(digits.get(i as usize).map_or('0', |&d| d as char));
        }
    } else {
        out.push('0');
    }
    let decimals = (nd - dp).max(0);
    if decimals > 0 {
        out.push('.');
        for i in 1..=decimals {
            let at = dp + i - 1;
            let d = if at < 0 {
                b'0'
            } else {
                digits.get(at as usize).copied().unwrap_or(b'0')
            };
            out.push(d as char);
        }
    }
    out
}

/// The `serde_json` number for the JSON text `encoding/json` writes for the float64 `x`:
/// integral values below 1e21 are written without a point, so they read back as integers
/// when they fit. `None` for NaN and infinities, which `encoding/json` refuses.
pub fn json_number(x: f64) -> Option<Number> {
    if !x.is_finite() {
        return None;
    }
    if let Some(text) = json_integer_text(x) {
        if let Ok(u) = text.parse::<u64>() {
            return Some(Number::from(u));
        }
        if let Ok(i) = text.parse::<i64>() {
            if i != 0 {
                return Some(Number::from(i));
            }
        }
    }
    Number::from_f64(x)
}

/// `encoding/json`'s text for an integral float64 below 1e21: the shortest digits that
/// read back as it, padded with zeros (`-4.041700526150706e+17` is `-404170052615070600`).
/// Rust's `Display` of a float is that same text.
pub fn json_integer_text(x: f64) -> Option<String> {
    (x.is_finite() && x.fract() == 0.0 && x.abs() < 1e21).then(|| format!("{x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_format() {
        for (x, want) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (1e6, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (-2.5e-10, "-2.5e-10"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (-0.0, "-0"),
            (100.0, "100"),
            (2.71, "2.71"),
        ] {
            assert_eq!(format_g(x, false), want, "{x}");
        }
        assert_eq!(format_g(0.1, true), "0.1");
        assert_eq!(format_g(123456789.0, true), "1.2345679e+08");
        assert_eq!(format_g(1e39, true), "+Inf");
    }

    #[test]
    fn json_numbers_read_back_like_go_output() {
        let parse = |t: &str| serde_json::from_str::<serde_json::Value>(t).unwrap();
        assert_eq!(json_number(1e6).unwrap(), Number::from(1_000_000u64));
        assert_eq!(
            serde_json::Value::Number(json_number(-3.0).unwrap()),
            parse("-3")
        );
        assert_eq!(
            serde_json::Value::Number(json_number(1e20).unwrap()),
            parse("100000000000000000000")
        );
        assert_eq!(
            serde_json::Value::Number(json_number(-0.0).unwrap()),
            parse("-0")
        );
        assert!(json_number(f64::NAN).is_none());
        assert_eq!(
            serde_json::Value::Number(json_number(-4.041700526150706e17).unwrap()),
            parse("-404170052615070600")
        );
    }
}
