/* Preloaded by tests/sanitize/run.sh after libasan and libubsan.
 *
 * With GCC's runtimes, a process holding both ASan and UBSan ignores
 * UBSAN_OPTIONS=log_path: UBSan reports always go to stderr, where a test that
 * captures a child's stderr (or pytest's own fd capture) would hide them. This
 * sets libubsan's report path from $HEARTH_UBSAN_LOG_PATH at load time, so its
 * reports land in files (PATH.PID) like ASan's. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

__attribute__((constructor)) static void hearth_ubsan_log_path(void) {
    const char* path = getenv("HEARTH_UBSAN_LOG_PATH");
    if (!path || !*path) return;
    /* libasan exports a function of the same name (its own report path): look
     * it up in libubsan itself, not in the global scope. */
    void* ubsan = dlopen("libubsan.so.1", RTLD_NOW | RTLD_NOLOAD);
    if (!ubsan) return;
    void (*set_report_path)(const char*) = (void (*)(const char*))dlsym(ubsan, "__sanitizer_set_report_path");
    if (set_report_path) set_report_path(path);
}
