//! Progress bars on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar over `len` items labelled `what`.
pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// A progress bar counting documents of a stream of unknown length.
pub fn indexing_bar() -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{msg} {pos} documents ({per_sec})").expect("valid template"),
    );
    bar.set_message("indexing");
    bar
}

/// An encoding progress bar that appears when the dense leg starts encoding (at commit).
pub fn encode_bar() -> (ProgressBar, hybrid_search::EncodeProgress) {
    let encoding = progress(0, "encoding");
    encoding.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    let bar = encoding.clone();
    let on_encoded: hybrid_search::EncodeProgress = Box::new(move |done, total| {
        if bar.is_hidden() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.reset();
        }
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    });
    (encoding, on_encoded)
}
