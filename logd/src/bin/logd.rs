fn main() -> std::process::ExitCode {
    // A crash leaves a tombstone on the host when microdroid_manager exports them.
    let _ = tombstone::handler::install(tombstone::CRASH_SOCKET);
    logd::daemon::main()
}
