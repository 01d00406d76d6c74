//! MIG (Multi-Instance GPU): the profiles and placement rules of A100-40GB, A100-80GB and
//! H100-80GB (NVIDIA MIG user guide; DOMAIN.md). Each GPU has 8 memory slots and 7 compute
//! slices; a profile occupies `size` memory slots starting at one of its valid starts. A set of
//! instances is valid when starts are valid, slots do not overlap and no profile exceeds its
//! maximum count (which also keeps every valid set within 7 compute slices).

use crate::gpu::GpuModel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// The six non-media profiles, by their NVIDIA profile id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MigProfile {
    /// id 19: 1g.5gb (A100-40GB) / 1g.10gb (80 GB parts)
    P1g,
    /// id 15: 1g.10gb (A100-40GB) / 1g.20gb — one slice, twice the memory
    P1gX2,
    /// id 14: 2g.10gb / 2g.20gb
    P2g,
    /// id 9: 3g.20gb / 3g.40gb
    P3g,
    /// id 5: 4g.20gb / 4g.40gb
    P4g,
    /// id 0: 7g.40gb / 7g.80gb
    P7g,
}

/// Placement rule of one profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProfileRule {
    pub id: u8,
    pub max: u8,
    pub starts: &'static [u8],
    pub size: u8,
    pub slices: u8,
    /// Memory in GB on a 40 GB part; doubled on 80 GB parts.
    pub memory_gb_40: f64,
}

impl MigProfile {
    pub const ALL: [MigProfile; 6] = [
        MigProfile::P1g,
        MigProfile::P1gX2,
        MigProfile::P2g,
        MigProfile::P3g,
        MigProfile::P4g,
        MigProfile::P7g,
    ];

    pub fn rule(self) -> ProfileRule {
        match self {
            MigProfile::P1g => ProfileRule {
                id: 19,
                max: 7,
                starts: &[0, 1, 2, 3, 4, 5, 6],
                size: 1,
                slices: 1,
                memory_gb_40: 5.0,
            },
            MigProfile::P1gX2 => ProfileRule {
                id: 15,
                max: 4,
                starts: &[0, 2, 4, 6],
                size: 2,
                slices: 1,
                memory_gb_40: 10.0,
            },
            MigProfile::P2g => ProfileRule {
                id: 14,
                max: 3,
                starts: &[0, 2, 4],
                size: 2,
                slices: 2,
                memory_gb_40: 10.0,
            },
            MigProfile::P3g => ProfileRule {
                id: 9,
                max: 2,
                starts: &[0, 4],
                size: 4,
                slices: 3,
                memory_gb_40: 20.0,
            },
            MigProfile::P4g => ProfileRule {
                id: 5,
                max: 1,
                starts: &[0],
                size: 4,
                slices: 4,
                memory_gb_40: 20.0,
            },
            MigProfile::P7g => ProfileRule {
                id: 0,
                max: 1,
                starts: &[0],
                size: 8,
                slices: 7,
                memory_gb_40: 40.0,
            },
        }
    }

    pub fn memory_gb(self, model: GpuModel) -> f64 {
        let m = self.rule().memory_gb_40;
        if model == GpuModel::A100_40GB {
            m
        } else {
            m * 2.0
        }
    }

    /// The profile's name on a GPU model, e.g. `1g.10gb` on an H100.
    pub fn name(self, model: GpuModel) -> String {
        let r = self.rule();
        let g = match self {
            MigProfile::P1g | MigProfile::P1gX2 => 1,
            MigProfile::P2g => 2,
            MigProfile::P3g => 3,
            MigProfile::P4g => 4,
            MigProfile::P7g => 7,
        };
        let _ = r;
        format!("{g}g.{}gb", self.memory_gb(model) as u32)
    }

    pub fn from_name(name: &str, model: GpuModel) -> Option<MigProfile> {
        MigProfile::ALL.into_iter().find(|p| p.name(model) == name)
    }

    /// Fraction of the GPU's full throughput an instance delivers: its compute slices' SMs out
    /// of the GPU's SMs. MIG leaves some SMs unused: an A100 exposes 7 × 14 = 98 of 108 SMs
    /// (DOMAIN.md: "about 10 of 108"), an H100 7 × 16 = 112 of 132.
    pub fn throughput_share(self, model: GpuModel) -> f64 {
        let (per_slice, total) = match model {
            GpuModel::H100_80GB => (16.0, 132.0),
            GpuModel::A100_40GB | GpuModel::A100_80GB => (14.0, 108.0),
        };
        self.rule().slices as f64 * per_slice / total
    }
}

/// One instance of a layout: a profile at a start slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MigInstance {
    pub profile: MigProfile,
    pub start: u8,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MigError {
    #[error("{name} cannot start at memory slot {start}; valid starts are {starts:?}")]
    BadStart {
        name: String,
        start: u8,
        starts: Vec<u8>,
    },
    #[error("{a} at slot {sa} and {b} at slot {sb} overlap in memory slots")]
    Overlap {
        a: String,
        sa: u8,
        b: String,
        sb: u8,
    },
    #[error("{count} × {name} exceed the profile's maximum of {max} per GPU")]
    TooMany { name: String, count: usize, max: u8 },
    #[error("{profiles} need {slots} memory slots (of 8) or {slices} compute slices (of 7): no placement fits them")]
    DoesNotFit {
        profiles: String,
        slots: u32,
        slices: u32,
    },
    #[error("unknown MIG profile `{0}` on {1}; profiles are {2}")]
    UnknownProfile(String, GpuModel, String),
}

fn mask(i: &MigInstance) -> u8 {
    let r = i.profile.rule();
    (((1u16 << r.size) - 1) << i.start) as u8
}

/// Checks a placed layout.
pub fn validate_layout(layout: &[MigInstance], model: GpuModel) -> Result<(), MigError> {
    for i in layout {
        let r = i.profile.rule();
        if !r.starts.contains(&i.start) {
            return Err(MigError::BadStart {
                name: i.profile.name(model),
                start: i.start,
                starts: r.starts.to_vec(),
            });
        }
    }
    for p in MigProfile::ALL {
        let count = layout.iter().filter(|i| i.profile == p).count();
        if count > p.rule().max as usize {
            return Err(MigError::TooMany {
                name: p.name(model),
                count,
                max: p.rule().max,
            });
        }
    }
    for (x, a) in layout.iter().enumerate() {
        for b in &layout[x + 1..] {
            if mask(a) & mask(b) != 0 {
                return Err(MigError::Overlap {
                    a: a.profile.name(model),
                    sa: a.start,
                    b: b.profile.name(model),
                    sb: b.start,
                });
            }
        }
    }
    Ok(())
}

/// Finds slots for a multiset of profiles (largest first), or explains why none exist.
pub fn place_profiles(
    profiles: &[MigProfile],
    model: GpuModel,
) -> Result<Vec<MigInstance>, MigError> {
    for p in MigProfile::ALL {
        let count = profiles.iter().filter(|x| **x == p).count();
        if count > p.rule().max as usize {
            return Err(MigError::TooMany {
                name: p.name(model),
                count,
                max: p.rule().max,
            });
        }
    }
    let mut sorted = profiles.to_vec();
    sorted.sort_by_key(|p| std::cmp::Reverse(p.rule().size));
    let mut out = Vec::new();
    if search(&sorted, 0, &mut out) {
        out.sort();
        return Ok(out);
    }
    let names: Vec<String> = profiles.iter().map(|p| p.name(model)).collect();
    Err(MigError::DoesNotFit {
        profiles: names.join(" + "),
        slots: profiles.iter().map(|p| p.rule().size as u32).sum(),
        slices: profiles.iter().map(|p| p.rule().slices as u32).sum(),
    })
}

fn search(todo: &[MigProfile], used: u8, out: &mut Vec<MigInstance>) -> bool {
    let Some((&p, rest)) = todo.split_first() else {
        return true;
    };
    for &s in p.rule().starts {
        let inst = MigInstance {
            profile: p,
            start: s,
        };
        let m = mask(&inst);
        if used & m == 0 {
            out.push(inst);
            if search(rest, used | m, out) {
                return true;
            }
            out.pop();
        }
    }
    false
}

/// Every distinct non-empty multiset of profiles that fits one GPU.
pub fn enumerate_profile_sets() -> BTreeSet<Vec<MigProfile>> {
    let mut sets = BTreeSet::new();
    fn walk(
        from: usize,
        used: u8,
        current: &mut Vec<MigProfile>,
        sets: &mut BTreeSet<Vec<MigProfile>>,
    ) {
        for (k, p) in MigProfile::ALL.iter().enumerate().skip(from) {
            let count = current.iter().filter(|x| *x == p).count();
            if count >= p.rule().max as usize {
                continue;
            }
            for &s in p.rule().starts {
                let m = mask(&MigInstance {
                    profile: *p,
                    start: s,
                });
                if used & m == 0 {
                    current.push(*p);
                    let mut key = current.clone();
                    key.sort();
                    sets.insert(key);
                    walk(k, used | m, current, sets);
                    current.pop();
                }
            }
        }
    }
    walk(0, 0, &mut Vec::new(), &mut sets);
    sets
}

/// The smallest profile whose memory holds `memory_gb` on `model`.
pub fn profile_for(memory_gb: f64, model: GpuModel) -> Option<MigProfile> {
    // P1gX2 has the memory of P2g with half the compute: prefer it only when memory is the need.
    MigProfile::ALL
        .into_iter()
        .filter(|p| p.memory_gb(model) + 1e-9 >= memory_gb)
        .min_by(|a, b| {
            (a.memory_gb(model), a.rule().slices)
                .partial_cmp(&(b.memory_gb(model), b.rule().slices))
                .unwrap()
        })
}

/// Free memory slots that no profile could still use, given the occupied mask.
fn stranded(used: u8) -> u32 {
    let mut usable = 0u8;
    for p in MigProfile::ALL {
        for &s in p.rule().starts {
            let m = mask(&MigInstance {
                profile: p,
                start: s,
            });
            if used & m == 0 {
                usable |= m;
            }
        }
    }
    (!used & !usable).count_ones()
}

/// Where to add `profile` to a layout: the valid start that strands the fewest free memory
/// slots now, then the one that leaves the most free slots the smallest profile can still use
/// (slot 7 is usable only by a 1g.20gb at 6 or a 3g at 4, so a 1g.20gb goes to 6 rather than
/// to 2 beside 1g instances, which would strand slot 7 once the 1g's fill up), then the one
/// keeping a free half for a 3g, then the lowest. `None` if it does not fit.
pub fn choose_start(layout: &[MigInstance], profile: MigProfile) -> Option<u8> {
    let used = layout.iter().fold(0u8, |u, i| u | mask(i));
    if layout.iter().filter(|i| i.profile == profile).count() >= profile.rule().max as usize {
        return None;
    }
    profile
        .rule()
        .starts
        .iter()
        .copied()
        .filter(|&s| used & mask(&MigInstance { profile, start: s }) == 0)
        .min_by_key(|&s| {
            let after = used | mask(&MigInstance { profile, start: s });
            // Room for a 3g (memory-slot halves) kept free counts in our favour.
            let halves_free = [0x0Fu8, 0xF0].iter().filter(|h| after & **h == 0).count();
            // Slots 0..=6 are the ones a 1g instance can start at.
            let small_usable = (!after & 0x7F).count_ones();
            (
                stranded(after),
                std::cmp::Reverse(small_usable),
                std::cmp::Reverse(halves_free),
                s,
            )
        })
}

/// The homogeneous layout with as many instances of `profile` as fit (mig-manager's `all-…`).
pub fn homogeneous(profile: MigProfile) -> Vec<MigInstance> {
    let mut layout = Vec::new();
    while let Some(s) = choose_start(&layout, profile) {
        layout.push(MigInstance { profile, start: s });
    }
    layout
}

/// Parses a list of profile names (e.g. seed 003's options) into a placed layout.
pub fn layout_from_names(names: &[String], model: GpuModel) -> Result<Vec<MigInstance>, MigError> {
    let known = || {
        MigProfile::ALL
            .iter()
            .map(|p| p.name(model))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let profiles = names
        .iter()
        .map(|n| {
            MigProfile::from_name(n, model)
                .ok_or_else(|| MigError::UnknownProfile(n.clone(), model, known()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    place_profiles(&profiles, model)
}

#[cfg(test)]
mod tests {
    use super::*;
    use MigProfile::*;

    #[test]
    fn seventy_seven_distinct_profile_sets() {
        assert_eq!(enumerate_profile_sets().len(), 77);
    }

    #[test]
    fn every_enumerated_set_stays_within_seven_slices() {
        for s in enumerate_profile_sets() {
            assert!(
                s.iter().map(|p| p.rule().slices as u32).sum::<u32>() <= 7,
                "{s:?}"
            );
        }
    }

    #[test]
    fn names_follow_the_gpu_model() {
        assert_eq!(P1g.name(GpuModel::A100_40GB), "1g.5gb");
        assert_eq!(P1g.name(GpuModel::H100_80GB), "1g.10gb");
        assert_eq!(P1gX2.name(GpuModel::A100_80GB), "1g.20gb");
        assert_eq!(P7g.name(GpuModel::A100_80GB), "7g.80gb");
        assert_eq!(P3g.name(GpuModel::A100_40GB), "3g.20gb");
    }

    #[test]
    fn seed_003_a100_80gb_options() {
        let m = GpuModel::A100_80GB;
        let opt =
            |v: &[&str]| layout_from_names(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), m);
        assert_eq!(opt(&["1g.10gb"; 7]).unwrap().len(), 7);
        assert!(opt(&["2g.20gb", "2g.20gb", "2g.20gb", "1g.10gb"]).is_ok());
        assert!(
            opt(&["3g.40gb", "2g.20gb", "2g.20gb"]).is_ok(),
            "the recommended option 4"
        );
        // Option 3 (2 × 3g.40gb + 1g.10gb) is not a real layout: two 3g instances take all
        // eight memory slots, so the 1g has nowhere to go.
        let e = opt(&["3g.40gb", "3g.40gb", "1g.10gb"]).unwrap_err();
        assert!(
            e.to_string().contains("no placement fits") && e.to_string().contains("9 memory slots"),
            "{e}"
        );
        // And a plainly invalid one.
        let e = opt(&["4g.40gb", "4g.40gb"]).unwrap_err();
        assert!(e.to_string().contains("maximum of 1"), "{e}");
        assert!(opt(&["5g.50gb"])
            .unwrap_err()
            .to_string()
            .contains("unknown MIG profile"));
    }

    #[test]
    fn validity_check_of_placed_layouts() {
        let m = GpuModel::H100_80GB;
        let ok = [
            MigInstance {
                profile: P3g,
                start: 4,
            },
            MigInstance {
                profile: P2g,
                start: 0,
            },
            MigInstance {
                profile: P2g,
                start: 2,
            },
        ];
        assert!(validate_layout(&ok, m).is_ok());
        let bad = [MigInstance {
            profile: P3g,
            start: 2,
        }];
        assert!(matches!(
            validate_layout(&bad, m),
            Err(MigError::BadStart { .. })
        ));
        let overlap = [
            MigInstance {
                profile: P4g,
                start: 0,
            },
            MigInstance {
                profile: P2g,
                start: 2,
            },
        ];
        assert!(matches!(
            validate_layout(&overlap, m),
            Err(MigError::Overlap { .. })
        ));
    }

    #[test]
    fn slot_choice_does_not_strand_slot_seven() {
        // DOMAIN.md: a 1g.20gb at slot 2 beside 1g instances can strand slot 7. With 1g
        // instances at 0 and 1, putting the 1g.20gb at 2 or 4 and later 1g's at 6 strands slot
        // 7; the chooser places the 1g.20gb at 6, keeping slot 7 in use.
        let layout = vec![
            MigInstance {
                profile: P1g,
                start: 0,
            },
            MigInstance {
                profile: P1g,
                start: 1,
            },
        ];
        assert_eq!(choose_start(&layout, P1gX2), Some(6));
        // 1g instances fill from the low slots and never take slot 6 while 0–5 are free.
        let mut l = Vec::new();
        for expect in [0, 1, 2, 3, 4, 5] {
            let s = choose_start(&l, P1g).unwrap();
            assert_eq!(s, expect);
            l.push(MigInstance {
                profile: P1g,
                start: s,
            });
        }
    }

    #[test]
    fn profile_choice_is_the_smallest_that_holds_the_model() {
        assert_eq!(profile_for(4.0, GpuModel::A100_40GB), Some(P1g));
        assert_eq!(profile_for(8.0, GpuModel::A100_40GB), Some(P1gX2));
        assert_eq!(profile_for(15.0, GpuModel::A100_40GB), Some(P3g));
        assert_eq!(profile_for(8.0, GpuModel::H100_80GB), Some(P1g));
        assert_eq!(profile_for(90.0, GpuModel::H100_80GB), None);
        assert_eq!(homogeneous(P1g).len(), 7);
        assert_eq!(homogeneous(P3g).len(), 2);
    }
}
