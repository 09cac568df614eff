fn main() -> std::process::ExitCode {
    logd::logcat::main()
}
