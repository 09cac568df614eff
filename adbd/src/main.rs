fn main() -> std::process::ExitCode {
    adbd::main()
}
