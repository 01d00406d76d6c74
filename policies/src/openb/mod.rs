//! The Alibaba openb GPU cluster as the FGD paper (Weng et al., USENIX ATC '23) models it, with
//! its six scheduling policies as plugins of [`crate::framework`]. Pure: the simulator in
//! `gpusched-sim` reads the traces and drives these pieces.
//!
//! - [`model`]: nodes (CPU, memory, per-GPU free milli, GPU model) and pods.
//! - [`typical`]: the typical-pod distribution FGD measures fragmentation against.
//! - [`frag`]: a node's GPU fragmentation against that distribution.
//! - [`filter`]: NodeResourcesFit and the GPU-share filter.
//! - [`score`]: Random, DotProd, GpuClustering, GpuPacking, BestFit, FGD.
//! - [`gpu_select`]: the GPU-share step that picks GPUs inside the chosen node.
//! - [`policy`]: the six profiles as the paper configured them.

pub mod filter;
pub mod frag;
pub mod gpu_select;
pub mod model;
pub mod policy;
pub mod score;
pub mod typical;

pub use frag::FragModel;
pub use gpu_select::{select_gpus, GpuSelMethod};
pub use model::{assign_kinds, GpuMask, GpuModels, GpuSpec, OpenbNode, OpenbPod, MILLI};
pub use policy::OpenbPolicy;
pub use typical::{typical_pods, TypicalPod, TypicalPodsConfig};
