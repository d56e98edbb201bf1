//! cgroup id → cgroup path → container id. The kernel names a task's cgroup by the inode of
//! its cgroup v2 directory; container runtimes name that directory after the container, so the
//! path carries the container id (and, under the kubelet, the pod uid) without asking anyone.

use std::{
    collections::HashMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

/// What a cgroup path says about the workload in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// The runtime's container id (64 hex digits).
    pub id: String,
    /// "containerd", "cri-o", "docker", "podman"; None where the path does not say.
    pub runtime: Option<&'static str>,
    /// The kubelet's pod uid (dashed UUID form, or the 32-hex hash of a static pod).
    pub pod_uid: Option<String>,
}

/// Runtime prefixes of systemd scope units (`<prefix>-<id>.scope`) and cgroupfs directories
/// (`<prefix>-<id>`). conmon scopes (`crio-conmon-`, `libpod-conmon-`) are the monitor
/// process, not the container, and do not match because their id part is not hex.
const PREFIXES: [(&str, &str); 5] = [
    ("cri-containerd-", "containerd"),
    ("crio-", "cri-o"),
    ("docker-", "docker"),
    ("libpod-", "podman"),
    ("containerd-", "containerd"),
];

fn is_container_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The container id a path component names, with the runtime when the name tells.
fn container_in(component: &str) -> Option<(&str, Option<&'static str>)> {
    let name = component.strip_suffix(".scope").unwrap_or(component);
    if is_container_id(name) {
        return Some((name, None));
    }
    PREFIXES.iter().find_map(|(prefix, runtime)| {
        let id = name.strip_prefix(prefix)?;
        is_container_id(id).then_some((id, Some(*runtime)))
    })
}

/// `pod<uid>` (cgroupfs driver) or `kubepods-<qos>-pod<uid with _ for ->.slice` (systemd driver).
fn pod_uid_in(component: &str) -> Option<String> {
    let name = component.strip_suffix(".slice").unwrap_or(component);
    let (_, uid) = name.rsplit_once("pod")?;
    let valid = matches!(uid.len(), 32 | 36)
        && uid
            .bytes()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f' | b'-' | b'_'));
    valid.then(|| uid.replace('_', "-"))
}

/// Reads the container out of a cgroup path such as
/// `/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice/cri-containerd-<id>.scope`
/// or `/system.slice/docker-<id>.scope`. The innermost container component wins: runtimes
/// nest helper cgroups (podman's `/container`, systemd's `init.scope`) below the container's.
pub fn container_of_path(path: &str) -> Option<Container> {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    let (index, (id, mut runtime)) = components
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, c)| container_in(c).map(|found| (i, found)))?;
    if runtime.is_none() && index > 0 && components.get(index - 1) == Some(&"docker") {
        runtime = Some("docker");
    }
    let pod_uid = components
        .get(..index)
        .unwrap_or_default()
        .iter()
        .rev()
        .find_map(|c| pod_uid_in(c));
    Some(Container {
        id: id.to_owned(),
        runtime,
        pod_uid,
    })
}

/// The cgroup v2 path in a /proc/PID/cgroup text: the `0::` line. The path is relative to the
/// reader's cgroup namespace (it may start with `/..`), which keeps the container's own
/// components, all that matters here.
pub fn unified_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::trim_end)
}

/// The cgroup v2 mount point in a /proc/self/mountinfo text (`/sys/fs/cgroup` on a pure v2
/// host, `/sys/fs/cgroup/unified` on a hybrid one).
pub fn cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split(' ').next()? != "cgroup2" {
            return None;
        }
        left.split(' ').nth(4).map(PathBuf::from)
    })
}

/// Directories visited per walk at most: a node has a few thousand cgroups; the bound keeps a
/// pathological tree from stalling the capture loop.
const MAX_WALK: usize = 65_536;
const MAX_DEPTH: usize = 24;

/// Every cgroup directory under `root` by inode (= cgroup id), paths relative to `root`.
pub fn walk(root: &Path) -> HashMap<u64, String> {
    let mut found = HashMap::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((dir, depth)) = stack.pop() {
        if found.len() >= MAX_WALK {
            break;
        }
        if let Ok(meta) = std::fs::metadata(&dir) {
            let relative = dir.strip_prefix(root).unwrap_or(&dir);
            found.insert(meta.ino(), format!("/{}", relative.display()));
        }
        if depth >= MAX_DEPTH {
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push((entry.path(), depth + 1));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "4b0c55f1a7b7b8f5d0e6a8c4e2f1d3c5b7a9e0f2d4c6b8a0e1f3d5c7b9a1e2f4";

    #[test]
    fn kubelet_systemd_driver_paths() {
        let path = format!(
            "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f4c1d2e_3a4b_4c5d_8e9f_0123456789ab.slice/cri-containerd-{ID}.scope"
        );
        assert_eq!(
            container_of_path(&path),
            Some(Container {
                id: ID.into(),
                runtime: Some("containerd"),
                pod_uid: Some("0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab".into()),
            })
        );
        let guaranteed = format!(
            "/kubepods.slice/kubepods-pod0f4c1d2e_3a4b_4c5d_8e9f_0123456789ab.slice/crio-{ID}.scope"
        );
        let c = container_of_path(&guaranteed).expect("test precondition");
        assert_eq!(c.runtime, Some("cri-o"));
        assert_eq!(
            c.pod_uid.as_deref(),
            Some("0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab")
        );
    }

    #[test]
    fn kubelet_cgroupfs_driver_and_static_pods() {
        let path = format!("/kubepods/besteffort/pod0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab/{ID}");
        let c = container_of_path(&path).expect("test precondition");
        assert_eq!((c.id.as_str(), c.runtime), (ID, None));
        assert_eq!(
            c.pod_uid.as_deref(),
            Some("0f4c1d2e-3a4b-4c5d-8e9f-0123456789ab")
        );
        let static_pod = format!("/kubepods/pod6ea0d2c0ac0e4ab4c3a6b0b7f5b46c1a/{ID}");
        assert_eq!(
            container_of_path(&static_pod)
                .expect("test precondition")
                .pod_uid
                .as_deref(),
            Some("6ea0d2c0ac0e4ab4c3a6b0b7f5b46c1a")
        );
    }

    #[test]
    fn docker_and_podman_paths() {
        let c = container_of_path(&format!("/system.slice/docker-{ID}.scope"))
            .expect("test precondition");
        assert_eq!((c.runtime, c.pod_uid), (Some("docker"), None));
        let c = container_of_path(&format!("/docker/{ID}")).expect("test precondition");
        assert_eq!(c.runtime, Some("docker"));
        // Podman on cgroup v2 nests the payload one level below the scope.
        let c = container_of_path(&format!(
            "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
        ))
        .expect("test precondition");
        assert_eq!((c.id.as_str(), c.runtime), (ID, Some("podman")));
        assert_eq!(
            container_of_path(&format!("/libpod_parent/libpod-{ID}"))
                .expect("test precondition")
                .runtime,
            Some("podman")
        );
    }

    #[test]
    fn not_containers() {
        for path in [
            "/",
            "/user.slice/user-0.slice/session-3.scope",
            "/system.slice/nginx.service",
            &format!("/machine.slice/libpod-conmon-{ID}.scope"),
            &format!("/kubepods.slice/crio-conmon-{ID}.scope"),
            // Upper-case or short hex is not a runtime's id.
            &format!("/docker/{}", ID.to_uppercase()),
            "/docker/4b0c55f1a7b7",
        ] {
            assert_eq!(container_of_path(path), None, "{path}");
        }
    }

    #[test]
    fn proc_cgroup_and_mountinfo() {
        let hybrid = "12:pids:/user.slice\n1:name=systemd:/user.slice/session-1.scope\n0::/user.slice/session-1.scope\n";
        assert_eq!(unified_path(hybrid), Some("/user.slice/session-1.scope"));
        assert_eq!(
            unified_path("0::/../../kubepods/x\n"),
            Some("/../../kubepods/x")
        );
        assert_eq!(unified_path("4:memory:/\n"), None);
        let mountinfo = "\
25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw
34 25 0:29 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
35 34 0:30 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
36 34 0:31 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd";
        assert_eq!(
            cgroup2_mount(mountinfo),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(cgroup2_mount("garbage\n - \n"), None);
    }

    #[test]
    fn walk_maps_inodes_to_relative_paths() {
        let dir = std::env::temp_dir().join(format!("cleartap-walk-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("a/b")).expect("test precondition");
        let found = walk(&dir);
        let ino = std::fs::metadata(dir.join("a/b"))
            .expect("test precondition")
            .ino();
        assert_eq!(found.get(&ino).map(String::as_str), Some("/a/b"));
        assert_eq!(found.len(), 3);
        std::fs::remove_dir_all(&dir).expect("test precondition");
    }
}
