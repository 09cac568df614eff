//! Loading the payload config and running the payload's task.

use std::io::{BufRead, BufReader, Read};
use std::os::fd::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use nix::unistd::{Gid, Uid};
use payload_config::{ApkConfig, Task, TaskType, VmPayloadConfig};

use crate::error::MicrodroidError;

/// The payload's own uid and gid (AOSP's `system_payload`, MICRODROID_PAYLOAD_UID/GID).
pub const PAYLOAD_UID: u32 = 6000;
pub const PAYLOAD_GID: u32 = 6000;
/// Where `microdroid_launcher` tasks find their binary: `lib/<abi>/` of the mounted APK.
pub const PAYLOAD_LIB_DIR: &str = "/mnt/apk/lib/x86_64";
/// The system's glibc loader and libraries (image::elfdeps), and the launcher of `.so` payloads.
pub const SYSTEM_LOADER: &str = "/system/lib64/ld-linux-x86-64.so.2";
pub const SYSTEM_LIB_DIR: &str = "/system/lib64";
/// The libraries only the system's own programs (mke2fs) may link: not on the payload's
/// library path, not in its sandbox (image::PRIVATE_LIB_DIR).
pub const PRIVATE_LIB_DIR: &str = "/system/private/lib64";
pub const LAUNCHER: &str = "/system/bin/microdroid_launcher";
/// The environment variable naming the fd on which the launcher says why a library did not load.
pub const LAUNCHER_STATUS_FD_ENV: &str = "MICRODROID_LAUNCHER_STATUS_FD";

/// Whether a `microdroid_launcher` task names an `AVmPayload_main` library (AOSP's payloads,
/// `lib*.so`) rather than a static executable.
pub fn is_payload_library(task: &Task) -> bool {
    task.type_ == TaskType::MicrodroidLauncher && task.command.ends_with(".so")
}

/// The command line that runs a payload library: the system loader, its library search limited
/// to the APK's `lib/x86_64/` and the system's libraries, the launcher, the library.
pub fn launcher_command(library: &Path) -> Vec<std::ffi::OsString> {
    vec![
        "--inhibit-cache".into(),
        "--library-path".into(),
        format!("{PAYLOAD_LIB_DIR}:{SYSTEM_LIB_DIR}").into(),
        LAUNCHER.into(),
        library.as_os_str().to_owned(),
    ]
}

/// Where the payload's task and config come from.
pub enum PayloadSource<'a> {
    /// A config file: on the system partition, or `/mnt/apk/<path>` named by the metadata.
    ConfigFile(&'a Path),
    /// The metadata's own config (`vmctl run-app --payload-binary-name`), as AOSP synthesizes
    /// it: a `microdroid_launcher` task and `extra_apk_count` extra APKs.
    Metadata(&'a payload_metadata::PayloadConfig),
}

/// The most extra APKs a payload may name: what the payload disk's GPT (128 entries) holds
/// besides the metadata and the main APK with their two partitions each. The count comes from
/// the host (the metadata) or the APK (its config): it is checked before anything is allocated
/// for it.
pub const MAX_EXTRA_APKS: usize = 62;

pub fn resolve_config(source: PayloadSource<'_>) -> Result<VmPayloadConfig> {
    let count = match source {
        PayloadSource::ConfigFile(_) => None,
        PayloadSource::Metadata(config) => Some(config.extra_apk_count as usize),
    };
    if let Some(n) = count.filter(|n| *n > MAX_EXTRA_APKS) {
        return Err(too_many_extra_apks(n));
    }
    let config = resolve_unchecked(source)?;
    if config.extra_apks.len() > MAX_EXTRA_APKS {
        return Err(too_many_extra_apks(config.extra_apks.len()));
    }
    Ok(config)
}

fn too_many_extra_apks(n: usize) -> anyhow::Error {
    MicrodroidError::PayloadInvalidConfig(format!(
        "{n} extra APKs: at most {MAX_EXTRA_APKS} fit on the payload disk"
    ))
    .into()
}

fn resolve_unchecked(source: PayloadSource<'_>) -> Result<VmPayloadConfig> {
    match source {
        PayloadSource::ConfigFile(path) => load_config(path),
        PayloadSource::Metadata(config) => Ok(VmPayloadConfig {
            task: Some(Task {
                type_: TaskType::MicrodroidLauncher,
                command: config.payload_binary_name.clone(),
                args: Vec::new(),
            }),
            extra_apks: (0..config.extra_apk_count)
                .map(|i| ApkConfig {
                    path: format!("extra-apk-{i}"),
                })
                .collect(),
            ..VmPayloadConfig::default()
        }),
    }
}

/// The executable a task runs: its path for `executable`, the APK's `lib/x86_64/<name>` for
/// `microdroid_launcher` (a static executable here: there is no bionic linker namespace to load
/// a shared library into).
pub fn task_executable(task: &Task) -> Result<PathBuf> {
    match task.type_ {
        TaskType::Executable => Ok(PathBuf::from(&task.command)),
        TaskType::MicrodroidLauncher => {
            let path = Path::new(PAYLOAD_LIB_DIR).join(&task.command);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => Ok(path),
                _ => Err(MicrodroidError::PayloadInvalidConfig(format!(
                    "payload binary {:?} is not a file in the APK's lib/x86_64/",
                    task.command
                ))
                .into()),
            }
        }
    }
}

/// Makes the child the payload's own user, with no capabilities left: called between fork and
/// exec, so it only makes async-signal-safe system calls.
fn drop_privileges(last_cap: u32) -> std::io::Result<()> {
    caps::limit_bounding_set(caps::CapSet::EMPTY, last_cap)?;
    nix::unistd::setgroups(&[Gid::from_raw(PAYLOAD_GID)])?;
    nix::unistd::setresgid(
        Gid::from_raw(PAYLOAD_GID),
        Gid::from_raw(PAYLOAD_GID),
        Gid::from_raw(PAYLOAD_GID),
    )?;
    // Leaving uid 0 clears the permitted, effective and ambient sets (no SECBIT_KEEP_CAPS).
    nix::unistd::setresuid(
        Uid::from_raw(PAYLOAD_UID),
        Uid::from_raw(PAYLOAD_UID),
        Uid::from_raw(PAYLOAD_UID),
    )?;
    // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

pub fn load_config(path: &Path) -> Result<VmPayloadConfig> {
    let bytes = std::fs::read(path).map_err(|e| {
        MicrodroidError::PayloadInvalidConfig(format!("cannot read {}: {e}", path.display()))
    })?;
    VmPayloadConfig::from_json(&bytes).map_err(|e| {
        MicrodroidError::PayloadInvalidConfig(format!("{}: {e}", path.display())).into()
    })
}

/// Runs the task and waits for it. Returns its exit code; death by a signal is an error, as in
/// AOSP ("Payload exited due to signal: N (SIGxxx)"). With a `confinement` the payload runs in
/// its sandbox, as its own user with no capabilities (microdroid_manager itself keeps running
/// as root); without one (unit tests) it runs as the caller.
pub fn run_task(
    task: &Task,
    debuggable: bool,
    confinement: Option<&crate::sandbox::Confinement>,
) -> Result<i32> {
    let executable = task_executable(task)?;
    let library = is_payload_library(task).then(|| executable.clone());
    let mut command = match &library {
        Some(lib) => {
            let mut c = Command::new(SYSTEM_LOADER);
            c.args(launcher_command(lib));
            c
        }
        None => {
            let mut c = Command::new(&executable);
            c.args(&task.args);
            c
        }
    };
    command
        .stdin(Stdio::null())
        .env_clear()
        .env("PATH", "/system/bin");
    // The launcher's verdict on loading the library comes back on a pipe of its own.
    let status_pipe = match &library {
        Some(_) => {
            let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .context("creating the launcher's status pipe")?;
            command.env(LAUNCHER_STATUS_FD_ENV, write.as_raw_fd().to_string());
            Some((read, write))
        }
        None => None,
    };
    let status_write_fd = status_pipe.as_ref().map(|(_, w)| w.as_raw_fd());
    let last_cap = caps::last_cap();
    let confinement = confinement.cloned();
    // SAFETY: the closure only makes async-signal-safe system calls (fcntl, unshare, mount,
    // chroot, setrlimit, open/write of the exec context, prctl, setgroups, setresgid,
    // setresuid, seccomp) and allocates nothing: everything it uses was built before fork.
    unsafe {
        command.pre_exec(move || {
            if let Some(fd) = status_write_fd {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if let Some(confinement) = &confinement {
                confinement.enter(|| drop_privileges(last_cap))?;
            }
            Ok(())
        });
    }
    // AOSP sends payload stdio to /dev/null and its logs to the log device when debuggable; here
    // the payload's output is the log, forwarded to the console only in debuggable VMs.
    if debuggable {
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
    } else {
        command.stdout(Stdio::null()).stderr(Stdio::null());
    }
    crate::log(&format!("starting payload {}", executable.display()));
    let mut child = command
        .spawn()
        .with_context(|| format!("starting payload {}", executable.display()))?;
    // Only the launcher holds the write end now: EOF once it closed it (loaded) or exited.
    let status_read = status_pipe.map(|(read, write)| {
        drop(write);
        read
    });
    let forwarders: Vec<_> = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|stream| thread::spawn(move || forward_to_console(stream)))
    .collect();
    let status = child.wait().context("waiting for the payload")?;
    for forwarder in forwarders {
        let _ = forwarder.join();
    }
    if let (Some(read), Some(lib)) = (status_read, &library) {
        let mut message = String::new();
        let _ = std::fs::File::from(read)
            .take(64 * 1024)
            .read_to_string(&mut message);
        if !message.is_empty() {
            return Err(MicrodroidError::PayloadInvalidConfig(format!(
                "cannot load payload library {}: {message}",
                lib.display()
            ))
            .into());
        }
    }
    if let Some(code) = status.code() {
        return Ok(code);
    }
    match status.signal() {
        Some(signo) => {
            let name = Signal::try_from(signo)
                .map(|s| s.as_str())
                .unwrap_or("unknown signal");
            bail!("Payload exited due to signal: {signo} ({name})")
        }
        None => bail!("payload ended with status {status:?}"),
    }
}

/// Copies payload output to the console line by line, tagged `payload`. Stops at end of file
/// (the payload exited) or at the first read error.
/// Each line also goes to logd (tag `payload`, INFO), as AOSP's payloads' stdio would through
/// logwrapper: `adb logcat` and the host's `--log` file show it.
fn forward_to_console(stream: Box<dyn Read + Send>) {
    let logger = android_log::Logger::new(android_log::LogId::Main);
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                logger.log(
                    android_log::INFO,
                    "payload",
                    text.trim_end_matches(['\n', '\r']),
                );
                let mut console = std::fs::OpenOptions::new().write(true).open("/dev/console");
                match console.as_mut() {
                    Ok(out) => guest_console::write_line(
                        out,
                        "payload",
                        text.trim_end_matches(['\n', '\r']),
                    ),
                    Err(_) => guest_console::log("payload", text.trim_end_matches(['\n', '\r'])),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_controlled_extra_apk_count_is_bounded() {
        let meta = |n: u32| payload_metadata::PayloadConfig {
            payload_binary_name: "libpayload.so".into(),
            extra_apk_count: n,
        };
        let ok = resolve_config(PayloadSource::Metadata(&meta(MAX_EXTRA_APKS as u32))).unwrap();
        assert_eq!(ok.extra_apks.len(), MAX_EXTRA_APKS);
        for n in [MAX_EXTRA_APKS as u32 + 1, u32::MAX] {
            let err = resolve_config(PayloadSource::Metadata(&meta(n))).unwrap_err();
            assert_eq!(
                crate::error::failure_class(&err),
                vm_status::FailureClass::PayloadInvalidConfig
            );
            assert!(
                err.to_string()
                    .contains(&format!("{n} extra APKs: at most 62")),
                "{err}"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm_config.json");
        let apks: Vec<_> = (0..63).map(serde_json_apk).collect();
        std::fs::write(
            &path,
            format!(
                r#"{{"task":{{"type":"microdroid_launcher","command":"a.so"}},"extra_apks":[{}]}}"#,
                apks.join(",")
            ),
        )
        .unwrap();
        let err = resolve_config(PayloadSource::ConfigFile(&path)).unwrap_err();
        assert!(err.to_string().contains("63 extra APKs"), "{err}");
    }

    fn serde_json_apk(i: usize) -> String {
        format!(r#"{{"path":"/data/app/{i}.apk"}}"#)
    }

    fn task(command: &str, args: &[&str]) -> Task {
        Task {
            type_: TaskType::Executable,
            command: command.into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reports_exit_codes_and_signals() {
        assert_eq!(
            run_task(&task("/bin/sh", &["-c", "exit 0"]), false, None).unwrap(),
            0
        );
        assert_eq!(
            run_task(&task("/bin/sh", &["-c", "exit 7"]), true, None).unwrap(),
            7
        );
        let err = run_task(&task("/bin/sh", &["-c", "kill -9 $$"]), false, None).unwrap_err();
        assert_eq!(err.to_string(), "Payload exited due to signal: 9 (SIGKILL)");
        let err = run_task(&task("/nonexistent/payload", &[]), false, None).unwrap_err();
        assert!(format!("{err:#}").contains("starting payload /nonexistent/payload"));
    }

    #[test]
    fn bad_configs_are_invalid_config_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = load_config(&dir.path().join("none.json")).unwrap_err();
        assert!(matches!(
            missing.downcast_ref(),
            Some(MicrodroidError::PayloadInvalidConfig(_))
        ));
        let path = dir.path().join("bad.json");
        std::fs::write(&path, "{").unwrap();
        let bad = load_config(&path).unwrap_err();
        assert!(matches!(
            bad.downcast_ref(),
            Some(MicrodroidError::PayloadInvalidConfig(_))
        ));
        let launcher = Task {
            type_: TaskType::MicrodroidLauncher,
            command: "lib.so".into(),
            args: vec![],
        };
        let err = run_task(&launcher, false, None).unwrap_err();
        assert!(matches!(
            err.downcast_ref(),
            Some(MicrodroidError::PayloadInvalidConfig(_))
        ));
    }

    /// Needs root (CI runs as root): the payload must come up as its own user with nothing in
    /// any capability set.
    #[test]
    fn payload_user_has_no_capabilities() {
        if !nix::unistd::geteuid().is_root() {
            return;
        }
        let script = "/bin/grep -E '^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp)' /proc/self/status | /usr/bin/tr -s '\\t ' ' ' > $0; ulimit -c >> $0";
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let out = dir.path().join("status");
        let t = task("/bin/sh", &["-c", script, out.to_str().unwrap()]);
        let confinement = crate::sandbox::Confinement::without_sandbox().unwrap();
        assert_eq!(run_task(&t, false, Some(&confinement)).unwrap(), 0);
        let status = std::fs::read_to_string(&out).unwrap();
        for line in [
            "Uid: 6000 6000 6000 6000",
            "Gid: 6000 6000 6000 6000",
            "CapPrm: 0000000000000000",
            "CapEff: 0000000000000000",
            "CapBnd: 0000000000000000",
            "CapAmb: 0000000000000000",
            "NoNewPrivs: 1",
            // Filter mode, and no core files (sandbox::RLIMITS).
            "Seccomp: 2",
            "\n0\n",
        ] {
            assert!(status.contains(line), "{line:?} not in:\n{status}");
        }
    }
}
