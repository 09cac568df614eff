//! microdroid_manager: everything lives in the library.

fn main() -> std::process::ExitCode {
    microdroid_manager::run()
}
