/*
 * The payload's entry point, as AOSP's vm_main.h: microdroid_launcher loads the payload
 * library (lib/x86_64/<name>.so in the APK) and calls AVmPayload_main; its result is the
 * payload's exit code.
 */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

typedef int AVmPayload_main_t(void);
AVmPayload_main_t AVmPayload_main;

#ifdef __cplusplus
}
#endif
