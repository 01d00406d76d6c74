//! Plots must render where no system fonts exist: register the bundled DejaVu Sans once with
//! plotters and always ask for the family by that name.

use std::sync::Once;

/// The family name every chart in gpusched uses.
pub const FONT: &str = "sans-serif";

static REGISTER: Once = Once::new();

/// Registers the embedded DejaVu Sans under [`FONT`] (idempotent, thread-safe).
pub fn ensure_font() {
    REGISTER.call_once(|| {
        // The font is compiled into the binary, so this cannot fail at run time; if plotters
        // ever rejects it, charts fall back to no text rather than aborting a run.
        let _ = plotters::style::register_font(
            FONT,
            plotters::style::FontStyle::Normal,
            dejavu::sans::regular(),
        );
        let _ = plotters::style::register_font(
            FONT,
            plotters::style::FontStyle::Bold,
            dejavu::sans::bold(),
        );
    });
}
