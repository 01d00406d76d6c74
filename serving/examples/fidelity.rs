use gpusched_serving::{fidelity, profile, reference};
fn main() {
    let dir = reference::default_dir();
    let v = reference::read_vllm(&dir.join(reference::VLLM_FILE)).unwrap();
    let s = reference::read_splitwise(&dir.join(reference::SPLITWISE_FILE)).unwrap();
    let pv = profile::lookup("vllm-0.15").unwrap();
    let ps = profile::lookup("splitwise-2024").unwrap();
    let t = std::time::Instant::now();
    let rv = fidelity::replay_vllm(&v, pv).unwrap();
    eprintln!("replay {:?}", t.elapsed());
    let rs = fidelity::replay_splitwise(&s, ps).unwrap();
    println!("{}", fidelity::vllm_table(&rv));
    println!("{}", fidelity::ratio_table(&rs));
    println!("{}", fidelity::verdict_text(&fidelity::verdict(&rv, &rs)));
}
