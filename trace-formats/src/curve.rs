//! Daily and piecewise rate curves.

/// Piecewise-linear interpolation through sorted points, clamped at both ends.
pub fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    match points {
        [] => x,
        [(_, y)] => *y,
        _ => {
            if x <= points[0].0 {
                return points[0].1;
            }
            for w in points.windows(2) {
                let ((x0, y0), (x1, y1)) = (w[0], w[1]);
                if x <= x1 {
                    return if x1 > x0 {
                        y0 + (y1 - y0) * (x - x0) / (x1 - x0)
                    } else {
                        y1
                    };
                }
            }
            points[points.len() - 1].1
        }
    }
}
