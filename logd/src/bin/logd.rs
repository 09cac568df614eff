fn main() -> std::process::ExitCode {
    logd::daemon::main()
}
