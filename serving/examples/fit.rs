use gpusched_serving::{fit, profile, reference};
fn main() {
    let dir = reference::default_dir();
    let s = reference::read_splitwise(&dir.join(reference::SPLITWISE_FILE)).unwrap();
    let t = std::time::Instant::now();
    let f = fit::fit_splitwise(&s).unwrap();
    eprintln!(
        "{:?} {:?} {:?} rows {} err {:?}",
        t.elapsed(),
        f.constants,
        f.a100,
        f.rows,
        fit::error_summary(&f.errors)
    );
    if std::env::args().any(|a| a == "vllm") {
        let v = reference::read_vllm(&dir.join(reference::VLLM_FILE)).unwrap();
        let (p, e) = fit::fit_vllm(&v, profile::lookup("vllm-0.15").unwrap(), 300).unwrap();
        eprintln!("{:?} {:?}", t.elapsed(), p);
        eprintln!("{:?}", fit::error_summary(&e));
    }
}
