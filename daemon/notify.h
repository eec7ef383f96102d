/* notify.h: the daemon's side of systemd's notify protocol (Type=notify):
 * readiness, reload, stopping, and a STATUS= line systemctl status shows.
 * Every call is a no-op when tidepool is built without libsystemd or is not
 * started by systemd (no NOTIFY_SOCKET). */
#pragma once

/* READY=1 with a STATUS= line; the first call also starts the periodic
 * STATUS= refresh (and WATCHDOG=1 pings when WatchdogSec= is set). Call it
 * once the listeners accept, and again when a reload is done. */
void notify_ready(void);
/* RELOADING=1 with MONOTONIC_USEC=<now>, before the reload work starts. */
void notify_reloading(void);
/* STOPPING=1; stops the periodic refresh so it cannot keep the loop alive. */
void notify_stopping(void);
