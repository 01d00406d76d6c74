//! Wall-clock timestamps (`YYYY-MM-DD HH:MM:SS[.fffffff]`, no time zone) as seconds. The whole
//! seconds stay integers so that 7 fractional digits survive the subtraction from the first row.

/// (whole seconds since 1970-01-01, fraction of a second) or `None` when malformed.
pub fn parse_datetime(s: &str) -> Option<(i64, f64)> {
    let s = s.trim();
    let (date, time) = s.split_once([' ', 'T'])?;
    let mut d = date.split('-');
    let y: i64 = d.next()?.parse().ok()?;
    let m: u32 = d.next()?.parse().ok()?;
    let day: u32 = d.next()?.parse().ok()?;
    // Years outside 1900..=2200 are typos (or fuzz); refusing them also keeps the day
    // arithmetic below far from overflow.
    if d.next().is_some()
        || !(1..=12).contains(&m)
        || !(1..=31).contains(&day)
        || !(1900..=2200).contains(&y)
    {
        return None;
    }
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut t = hms.split(':');
    let hh: i64 = t.next()?.parse().ok()?;
    let mm: i64 = t.next()?.parse().ok()?;
    let ss: i64 = t.next()?.parse().ok()?;
    if t.next().is_some() || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    let fraction = if frac.is_empty() {
        0.0
    } else {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        format!("0.{frac}").parse().ok()?
    };
    Some((
        days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss,
        fraction,
    ))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds of `t` after `origin`.
pub fn since(origin: (i64, f64), t: (i64, f64)) -> f64 {
    (t.0 - origin.0) as f64 + (t.1 - origin.1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_fractional_digits_and_day_boundaries() {
        let a = parse_datetime("2023-11-16 18:17:03.9799600").unwrap();
        let b = parse_datetime("2023-11-16 18:17:04.0319600").unwrap();
        assert!((since(a, b) - 0.052).abs() < 1e-9);
        let c = parse_datetime("2024-03-01 00:00:00").unwrap();
        let d = parse_datetime("2024-02-28 23:59:59").unwrap();
        assert!((since(d, c) - 86_401.0).abs() < 1e-9, "2024 is a leap year");
        assert_eq!(parse_datetime("1970-01-01 00:00:00").unwrap(), (0, 0.0));
        assert!(parse_datetime("2023-13-01 00:00:00").is_none());
        assert!(parse_datetime("2023-11-16 18:17:x").is_none());
        assert!(parse_datetime("hello").is_none());
    }
}
