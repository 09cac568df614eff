//! Console output of PID 1 and of the services it forwards (format: `guest_console`). In a
//! debuggable VM each forwarded line also goes to logd, tagged with the service's name, so that
//! `adb logcat` and the host's `--log` file have the services' output (logd drops the lines
//! while it is not running, e.g. in a VM that is not debuggable).

use std::sync::OnceLock;

use android_log::{LogId, Logger};

fn logger() -> &'static Logger {
    static LOGGER: OnceLock<Logger> = OnceLock::new();
    LOGGER.get_or_init(|| Logger::new(LogId::System))
}

/// Writes a line for `tag` to the console (PID 1's stdout is /dev/console) and to logd.
pub fn write_tagged(tag: &str, text: &str) {
    guest_console::log(tag, text);
    logger().log(android_log::INFO, tag, text);
}

/// Logs a line from init itself.
pub fn log(text: &str) {
    guest_console::log("init", text);
}
