//! Capture filters from the command line, turned into the kernel's filter maps and flag word.
//! They act before any payload is copied (see agent-ebpf/src/filter.rs).

use agent_common::{
    event::filter::{
        CGROUP_ACTIVE, CGROUP_INCLUDE, COMM_ACTIVE, COMM_INCLUDE, EXCLUDE, INCLUDE, MAX_ENTRIES,
        PID_ACTIVE, PID_INCLUDE, PORT_ACTIVE, PORT_INCLUDE,
    },
    names::{MAP_FILTER_CGROUPS, MAP_FILTER_COMMS, MAP_FILTER_PIDS, MAP_FILTER_PORTS},
};
use aya::{Ebpf, maps::HashMap};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("--{flag} {value:?}: task names are at most 15 bytes (the kernel truncates them)")]
    CommTooLong { flag: &'static str, value: String },
    #[error("--{flag}: at most {MAX_ENTRIES} values")]
    TooMany { flag: &'static str },
    #[error("{value} is given both to --{include} and --{exclude}")]
    Contradiction {
        include: &'static str,
        exclude: &'static str,
        value: String,
    },
    #[error("filter map {0} missing from the eBPF object or not writable: {1}")]
    Map(&'static str, String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    pub pids: (Vec<u32>, Vec<u32>),
    pub comms: (Vec<String>, Vec<String>),
    pub cgroups: (Vec<u64>, Vec<u64>),
    pub ports: (Vec<u16>, Vec<u16>),
}

fn comm_key(name: &str) -> [u8; 16] {
    // At most 15 bytes and a NUL, like the kernel's task name.
    let mut key = [0u8; 16];
    for (k, b) in key.iter_mut().take(15).zip(name.bytes()) {
        *k = b;
    }
    key
}

fn check<T: PartialEq + ToString>(
    (include, exclude): &(Vec<T>, Vec<T>),
    names: (&'static str, &'static str),
) -> Result<(), FilterError> {
    for (list, flag) in [(include, names.0), (exclude, names.1)] {
        if list.len() > MAX_ENTRIES as usize {
            return Err(FilterError::TooMany { flag });
        }
    }
    if let Some(both) = include.iter().find(|v| exclude.contains(v)) {
        return Err(FilterError::Contradiction {
            include: names.0,
            exclude: names.1,
            value: both.to_string(),
        });
    }
    Ok(())
}

impl Filters {
    pub fn validate(&self) -> Result<(), FilterError> {
        check(&self.pids, ("pid", "exclude-pid"))?;
        check(&self.comms, ("comm", "exclude-comm"))?;
        check(&self.cgroups, ("cgroup", "exclude-cgroup"))?;
        check(&self.ports, ("port", "exclude-port"))?;
        for (list, flag) in [(&self.comms.0, "comm"), (&self.comms.1, "exclude-comm")] {
            if let Some(long) = list.iter().find(|c| c.len() > 15) {
                return Err(FilterError::CommTooLong {
                    flag,
                    value: long.clone(),
                });
            }
        }
        Ok(())
    }

    /// The FILTER_FLAGS word for the kernel.
    pub fn flags(&self) -> u32 {
        let bits = |(include, exclude): (usize, usize), active: u32, inc: u32| {
            (if include + exclude > 0 { active } else { 0 }) | (if include > 0 { inc } else { 0 })
        };
        bits(
            (self.pids.0.len(), self.pids.1.len()),
            PID_ACTIVE,
            PID_INCLUDE,
        ) | bits(
            (self.comms.0.len(), self.comms.1.len()),
            COMM_ACTIVE,
            COMM_INCLUDE,
        ) | bits(
            (self.cgroups.0.len(), self.cgroups.1.len()),
            CGROUP_ACTIVE,
            CGROUP_INCLUDE,
        ) | bits(
            (self.ports.0.len(), self.ports.1.len()),
            PORT_ACTIVE,
            PORT_INCLUDE,
        )
    }

    pub fn is_empty(&self) -> bool {
        self.flags() == 0
    }

    /// Writes the lists into the loaded object's filter maps.
    pub fn install(&self, ebpf: &mut Ebpf) -> Result<(), FilterError> {
        fn fill<K: aya::Pod>(
            ebpf: &mut Ebpf,
            name: &'static str,
            entries: impl Iterator<Item = (K, u8)>,
        ) -> Result<(), FilterError> {
            let map = ebpf
                .map_mut(name)
                .ok_or_else(|| FilterError::Map(name, "missing".into()))?;
            let mut map: HashMap<_, K, u8> =
                HashMap::try_from(map).map_err(|e| FilterError::Map(name, e.to_string()))?;
            for (key, verdict) in entries {
                map.insert(key, verdict, 0)
                    .map_err(|e| FilterError::Map(name, e.to_string()))?;
            }
            Ok(())
        }
        fn both<T: Copy, K>(lists: &(Vec<T>, Vec<T>), key: impl Fn(T) -> K) -> Vec<(K, u8)> {
            let inc = lists.0.iter().map(|v| (key(*v), INCLUDE));
            let exc = lists.1.iter().map(|v| (key(*v), EXCLUDE));
            inc.chain(exc).collect()
        }
        fill(ebpf, MAP_FILTER_PIDS, both(&self.pids, |p| p).into_iter())?;
        fill(
            ebpf,
            MAP_FILTER_CGROUPS,
            both(&self.cgroups, |c| c).into_iter(),
        )?;
        fill(ebpf, MAP_FILTER_PORTS, both(&self.ports, |p| p).into_iter())?;
        let comms = self
            .comms
            .0
            .iter()
            .map(|c| (comm_key(c), INCLUDE))
            .chain(self.comms.1.iter().map(|c| (comm_key(c), EXCLUDE)));
        fill(ebpf, MAP_FILTER_COMMS, comms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_validation() {
        assert_eq!(Filters::default().flags(), 0);
        let f = Filters {
            pids: (vec![], vec![42]),
            ports: (vec![443], vec![]),
            ..Filters::default()
        };
        assert_eq!(f.flags(), PID_ACTIVE | PORT_ACTIVE | PORT_INCLUDE);
        assert!(f.validate().is_ok());
        let bad = Filters {
            comms: (vec!["a-very-long-process-name".into()], vec![]),
            ..Filters::default()
        };
        assert!(matches!(
            bad.validate(),
            Err(FilterError::CommTooLong { flag: "comm", .. })
        ));
        let both = Filters {
            ports: (vec![80], vec![80]),
            ..Filters::default()
        };
        assert_eq!(
            both.validate().map_err(|e| e.to_string()),
            Err("80 is given both to --port and --exclude-port".into())
        );
        assert_eq!(comm_key("curl")[..5], *b"curl\0");
    }
}
