//! Payloads as AOSP builds them: `AVmPayload_main` shared libraries (C, built here with `cc`
//! against include/vm_payload.h), loaded by the guest's microdroid_launcher with the libraries
//! of their APK; what happens when a library, a dependency or the entry point is missing or the
//! file is not an ELF; that nothing executable comes from writable or extra-APK mounts; every
//! `AVmPayload_*` call from C; and the ABI itself (exported names, headers).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use boot_tests::{
    build_image, cc_shared, console_text, guest_dyn_dir, sign_tree, workspace_root, write_manifest,
    ImageChanges, TestSigner,
};
use host_tools::app::{AppPayload, PayloadSpec};
use host_tools::outcome::VmOutcome;
use vm_status::DeathReason;

const TIMEOUT: Duration = Duration::from_secs(120);

/// An APK tree in `dir/<name>.tree` with `assets/vm_config.json` running `library`.
fn tree(dir: &Path, name: &str, library: &str) -> PathBuf {
    let tree = dir.join(format!("{name}.tree"));
    std::fs::create_dir_all(tree.join("assets")).unwrap();
    std::fs::create_dir_all(tree.join("lib/x86_64")).unwrap();
    let config = serde_json::json!({"task": {"type": "microdroid_launcher", "command": library}});
    std::fs::write(tree.join("assets/vm_config.json"), config.to_string()).unwrap();
    write_manifest(&tree, &format!("com.example.{name}"), 1);
    tree
}

fn lib_dir(tree: &Path) -> PathBuf {
    tree.join("lib/x86_64")
}

/// Runs the APK made from `tree` (with an instance and, if asked, storage and extra APKs).
fn run(
    image: &Path,
    name: &str,
    tree: &Path,
    storage: bool,
    extra: Vec<PathBuf>,
) -> (VmOutcome, String) {
    let (apk, idsig) = sign_tree(tree, &image.join(format!("{name}.apk")), TestSigner::Rsa);
    let mut config = boot_tests::vm_config(image, TIMEOUT);
    config.app = Some(AppPayload {
        apk,
        idsig,
        payload: PayloadSpec::ConfigPath("assets/vm_config.json".into()),
        extra_apks: extra,
        apexes: vec![],
    });
    config.instance = Some(image.join(format!("{name}-instance.img")));
    if storage {
        config.storage = Some((image.join(format!("{name}-storage.img")), 8 << 20));
    }
    let result = boot_tests::boot(&config).unwrap();
    (result.outcome.clone(), console_text(&result))
}

/// The death reason must be MICRODROID_INVALID_PAYLOAD_CONFIG; returns the guest's report of
/// why (the loader's message, which notifyError also carries to the host).
fn invalid_config_detail(outcome: &VmOutcome, console: &str) -> String {
    match outcome {
        VmOutcome::GuestError(d) if d.reason == DeathReason::MicrodroidInvalidPayloadConfig => {}
        other => panic!("expected MICRODROID_INVALID_PAYLOAD_CONFIG, got {other:?}\n{console}"),
    }
    console
        .lines()
        .find(|l| l.contains("cannot load payload library"))
        .unwrap_or_else(|| panic!("no loader message:\n{console}"))
        .to_owned()
}

const SECOND: &str = "int second_value(void) { return 42; }\n";

#[test]
fn a_library_payload_uses_a_second_library_of_its_apk() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let t = tree(image.path(), "second", "libmain.so");
    cc_shared(&lib_dir(&t).join("libsecond.so"), SECOND, &[]);
    cc_shared(
        &lib_dir(&t).join("libmain.so"),
        "#include <stdio.h>\n#include <vm_payload.h>\nint second_value(void);\n\
         int AVmPayload_main(void) { printf(\"from a library payload\\n\"); return second_value(); }\n",
        &["second"],
    );
    let (outcome, console) = run(image.path(), "second", &t, false, vec![]);
    assert_eq!(outcome, VmOutcome::PayloadFinished(42), "{console}");
    assert!(
        console.contains("payload: from a library payload"),
        "{console}"
    );
}

#[test]
fn libraries_that_cannot_load_say_why() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    // A dependency the APK does not carry.
    let t = tree(dir, "nodep", "libmain.so");
    let helper = dir.join("libmissing.so");
    cc_shared(&helper, SECOND, &[]);
    std::fs::copy(&helper, lib_dir(&t).join("libmissing.so")).unwrap();
    cc_shared(
        &lib_dir(&t).join("libmain.so"),
        "int second_value(void);\nint AVmPayload_main(void) { return second_value(); }\n",
        &["missing"],
    );
    std::fs::remove_file(lib_dir(&t).join("libmissing.so")).unwrap();
    let (outcome, console) = run(dir, "nodep", &t, false, vec![]);
    let detail = invalid_config_detail(&outcome, &console);
    assert!(
        detail.contains("libmissing.so: cannot open shared object file"),
        "{detail}"
    );

    // No entry point.
    let t = tree(dir, "noentry", "libmain.so");
    cc_shared(
        &lib_dir(&t).join("libmain.so"),
        "int not_main(void) { return 0; }\n",
        &[],
    );
    let (outcome, console) = run(dir, "noentry", &t, false, vec![]);
    let detail = invalid_config_detail(&outcome, &console);
    assert!(detail.contains("AVmPayload_main"), "{detail}");
    assert!(detail.contains("undefined symbol"), "{detail}");

    // Not an ELF file.
    let t = tree(dir, "notelf", "libmain.so");
    std::fs::write(
        lib_dir(&t).join("libmain.so"),
        "not an ELF file\n".repeat(64),
    )
    .unwrap();
    let (outcome, console) = run(dir, "notelf", &t, false, vec![]);
    let detail = invalid_config_detail(&outcome, &console);
    assert!(detail.contains("invalid ELF header"), "{detail}");

    // The library named does not exist at all.
    let t = tree(dir, "nolib", "libabsent.so");
    let (outcome, console) = run(dir, "nolib", &t, false, vec![]);
    match outcome {
        VmOutcome::GuestError(d) if d.reason == DeathReason::MicrodroidInvalidPayloadConfig => {}
        other => panic!("expected MICRODROID_INVALID_PAYLOAD_CONFIG, got {other:?}"),
    }
    assert!(
        console.contains("\"libabsent.so\" is not a file in the APK"),
        "{console}"
    );
}

/// Fault matrix row 32: a payload that links a library the system carries for its own programs
/// (mke2fs's libext2fs) does not load, as AOSP's linker namespaces refuse it: the library is
/// neither on the payload's library path nor in its sandbox, so naming it by path fails too;
/// the C runtime the payload may link (libm) is there.
#[test]
fn private_system_libraries_are_out_of_reach() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    // Linked against a stand-in with the private library's name and one of its functions:
    // the guest has the real one, in /system/private/lib64.
    let t = tree(dir, "private", "libmain.so");
    let stand_in = lib_dir(&t).join("libext2fs.so.2");
    cc_shared(
        &stand_in,
        "int ext2fs_default_journal_size(unsigned long long n) { return (int)n; }\n",
        &[],
    );
    cc_shared(
        &lib_dir(&t).join("libmain.so"),
        "int ext2fs_default_journal_size(unsigned long long n);\n\
         int AVmPayload_main(void) { return ext2fs_default_journal_size(0); }\n",
        &[":libext2fs.so.2"],
    );
    std::fs::remove_file(&stand_in).unwrap();
    let (outcome, console) = run(dir, "private", &t, false, vec![]);
    let detail = invalid_config_detail(&outcome, &console);
    assert!(
        detail.contains("libext2fs.so.2: cannot open shared object file"),
        "{detail}"
    );

    // By path: the private directory is not in the sandbox; the public C runtime is.
    let t = tree(dir, "bypath", "libmain.so");
    cc_shared(
        &lib_dir(&t).join("libmain.so"),
        "#include <dlfcn.h>\n#include <math.h>\n#include <stdio.h>\n\
         int AVmPayload_main(void) {\n\
           void *private = dlopen(\"/system/private/lib64/libext2fs.so.2\", RTLD_NOW);\n\
           printf(\"private: %s\\n\", private ? \"loaded\" : dlerror());\n\
           void *libm = dlopen(\"libm.so.6\", RTLD_NOW);\n\
           double (*root)(double) = libm ? (double (*)(double))dlsym(libm, \"sqrt\") : 0;\n\
           return private ? 1 : root ? (int)root(49.0) : 2;\n\
         }\n",
        &[],
    );
    let (outcome, console) = run(dir, "bypath", &t, false, vec![]);
    assert_eq!(outcome, VmOutcome::PayloadFinished(7), "{console}");
    assert!(
        console.contains(
            "private: /system/private/lib64/libext2fs.so.2: cannot open shared object file"
        ),
        "{console}"
    );
}

/// Tries to load code from the encrypted storage and from an extra APK: both mounts are noexec,
/// so the kernel refuses to map it.
const LOADER_ESCAPE: &str = r#"
#include <dlfcn.h>
#include <stdio.h>
#include <vm_payload.h>

static int refused(const char* path) {
    void* h = dlopen(path, RTLD_NOW);
    printf("dlopen %s: %s\n", path, h ? "loaded" : dlerror());
    return h == NULL;
}

int AVmPayload_main(void) {
    char copy[256];
    snprintf(copy, sizeof(copy), "%s/copied.so", AVmPayload_getEncryptedStoragePath());
    FILE* in = fopen("/mnt/apk/lib/x86_64/libsecond.so", "rb");
    FILE* out = fopen(copy, "wb");
    if (in == NULL || out == NULL) { printf("cannot copy\n"); return 2; }
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0) fwrite(buf, 1, n, out);
    fclose(in);
    fclose(out);
    int ok = refused(copy) && refused("/mnt/extra-apk/0/lib/x86_64/libsecond.so");
    return ok ? 0 : 1;
}
"#;

#[test]
fn nothing_executable_comes_from_storage_or_extra_apks() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    // The extra APK carries a library; so does the app (copied to the storage at run time).
    let extra = tree(dir, "extra", "unused.so");
    cc_shared(&lib_dir(&extra).join("libsecond.so"), SECOND, &[]);
    let (extra_apk, _) = sign_tree(&extra, &dir.join("extra.apk"), TestSigner::Rsa);
    let t = tree(dir, "escape", "libescape.so");
    let config = serde_json::json!({
        "task": {"type": "microdroid_launcher", "command": "libescape.so"},
        "extra_apks": [{"path": "/system/etc/extra.apk"}]
    });
    std::fs::write(t.join("assets/vm_config.json"), config.to_string()).unwrap();
    cc_shared(&lib_dir(&t).join("libsecond.so"), SECOND, &[]);
    cc_shared(
        &lib_dir(&t).join("libescape.so"),
        LOADER_ESCAPE,
        &["vm_payload", "dl"],
    );
    let (outcome, console) = run(dir, "escape", &t, true, vec![extra_apk]);
    assert_eq!(outcome, VmOutcome::PayloadFinished(0), "{console}");
    assert!(
        console.contains("copied.so: failed to map segment from shared object"),
        "{console}"
    );
}

#[test]
fn every_payload_api_call_from_c() {
    let image = build_image(&ImageChanges::default()).unwrap();
    let t = tree(image.path(), "capi", "libc_payload.so");
    let source =
        std::fs::read_to_string(workspace_root().join("examples/c-payload/payload.c")).unwrap();
    cc_shared(
        &lib_dir(&t).join("libc_payload.so"),
        &source,
        &["vm_payload"],
    );
    let (outcome, console) = run(image.path(), "capi", &t, true, vec![]);
    assert_eq!(outcome, VmOutcome::PayloadFinished(0), "{console}");
    for call in [
        "AVmPayload_getApkContentsPath",
        "AVmPayload_getVmInstanceSecret",
        "AVmPayload_getDiceAttestationChain",
        "AVmPayload_getDiceAttestationCdi",
        "AVmPayload_requestAttestation",
        "AVmPayload_notifyPayloadReady",
        "the encrypted storage keeps a counter",
    ] {
        assert!(
            console.contains(&format!("payload: ok: {call}")),
            "{call}\n{console}"
        );
    }
    assert!(!console.contains("FAIL"), "{console}");
    assert!(
        console.contains("Remote attestation is not supported in the current environment."),
        "{console}"
    );
}

#[test]
fn a_c_payload_serves_a_binder_to_the_host() {
    // The demo's libhello.so (with libgreeting.so): an AIBinder of libbinder_ndk.so served by
    // AVmPayload_runVsockRpcServer; strings, byte arrays and a oneway-style quit from C.
    let image = build_image(&ImageChanges::default()).unwrap();
    let dir = image.path();
    let t = tree(dir, "chello", "libhello.so");
    let src = workspace_root().join("examples/hello-app/libhello");
    // The sources are compiled where cc_shared puts them, beside their header.
    std::fs::copy(src.join("greeting.h"), lib_dir(&t).join("greeting.h")).unwrap();
    cc_shared(
        &lib_dir(&t).join("libgreeting.so"),
        &std::fs::read_to_string(src.join("greeting.c")).unwrap(),
        &[],
    );
    cc_shared(
        &lib_dir(&t).join("libhello.so"),
        &std::fs::read_to_string(src.join("hello.c")).unwrap(),
        &["greeting", "vm_payload", "binder_ndk"],
    );
    std::fs::remove_file(lib_dir(&t).join("greeting.h")).unwrap();
    for c in ["libgreeting.c", "libhello.c"] {
        let _ = std::fs::remove_file(lib_dir(&t).join(c));
    }
    let (apk, idsig) = sign_tree(&t, &dir.join("chello.apk"), TestSigner::Rsa);
    let mut config = boot_tests::vm_config(dir, TIMEOUT);
    config.app = Some(AppPayload::from_config_path(
        apk,
        idsig,
        "assets/vm_config.json",
    ));
    config.instance = Some(dir.join("chello-instance.img"));
    let (result, answer) = boot_tests::run_with_ready_payload(&config, |uds| {
        let stream = host_tools::vsock::connect(&uds, 5678, Duration::from_secs(10)).unwrap();
        let client = hello_payload::HelloClient::connect(stream).unwrap();
        let greeting = client.greet("C").unwrap();
        let data: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        let echoed = client.echo(&data).unwrap() == data;
        client.quit().unwrap();
        (greeting, echoed)
    })
    .unwrap();
    let (greeting, echoed) = answer.expect("the payload never became ready");
    assert_eq!(
        greeting,
        format!("Hello, C! (from the VM, CID {})", result.cid)
    );
    assert!(echoed);
    assert_eq!(
        result.outcome,
        VmOutcome::PayloadFinished(0),
        "{}",
        console_text(&result)
    );
}

/// AOSP's libvm_payload exports, API 34 and 35 (`libs/libvm_payload/libvm_payload.map.txt`).
const AOSP_EXPORTS: [&str; 15] = [
    "AVmAttestationResult_free",
    "AVmAttestationResult_getCertificateAt",
    "AVmAttestationResult_getCertificateCount",
    "AVmAttestationResult_getPrivateKey",
    "AVmAttestationResult_sign",
    "AVmAttestationStatus_toString",
    "AVmPayload_getApkContentsPath",
    "AVmPayload_getDiceAttestationCdi",
    "AVmPayload_getDiceAttestationChain",
    "AVmPayload_getEncryptedStoragePath",
    "AVmPayload_getVmInstanceSecret",
    "AVmPayload_notifyPayloadReady",
    "AVmPayload_requestAttestation",
    "AVmPayload_requestAttestationForTesting",
    "AVmPayload_runVsockRpcServer",
];

#[test]
fn libvm_payload_exports_exactly_aosps_names() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(guest_dyn_dir().join("libvm_payload.so"))
        .output()
        .unwrap();
    assert!(out.status.success(), "nm: run `make build`");
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_owned))
        .collect();
    names.sort();
    assert_eq!(names, AOSP_EXPORTS);
}

#[test]
fn the_headers_compile_as_c11_and_cpp17() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("use.c");
    std::fs::write(
        &src,
        "#include <vm_payload.h>\n#include <android/binder_ibinder.h>\n\
         int AVmPayload_main(void) { return AVmPayload_getApkContentsPath() != 0; }\n",
    )
    .unwrap();
    for (compiler, std) in [("cc", "-std=c11"), ("g++", "-std=c++17")] {
        let mut cmd = Command::new(compiler);
        if compiler == "g++" {
            cmd.args(["-x", "c++"]);
        }
        let status = cmd
            .args([
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                "-pedantic",
                std,
            ])
            .arg("-I")
            .arg(workspace_root().join("include"))
            .arg(&src)
            .status()
            .unwrap();
        assert!(status.success(), "{compiler} {std}");
    }
}
