/* client_internal.h: what the client's files share (client.c: connection,
 * startup and relay; client_auth.c: authentication; client_login.c: choosing
 * the pool and the first backend). */
#pragma once

#include "daemon/client.h"
#include "proto/proto.h"

/* Send a built buffer; closes the client when it cannot. */
int client_send_buf(tp_client *c, proto_buf *b) __attribute__((warn_unused_result));
/* Write bytes to the socket as they are (TLS: ciphertext), copying what
 * does not go out at once. -1 on a socket error. */
int client_write_raw(tp_client *c, const uint8_t *data, size_t len) __attribute__((warn_unused_result));
/* Send an ErrorResponse (ERROR, connection kept). */
void client_error(tp_client *c, const char *sqlstate, const char *message);
void client_start_reading(tp_client *c);
void client_stop_reading(tp_client *c);

/* Authentication (client_auth.c). */
void client_auth_start(tp_client *c);
void client_auth_message(tp_client *c, const proto_msg *m);
void client_auth_clear(tp_client *c);
/* Refuse an authentication exchange (logged once, as a failed login). */
void client_auth_refused(tp_client *c, const char *sqlstate, const char *message);

/* After authentication succeeded (client_login.c). */
void client_login(tp_client *c);
/* Its backend is set up for it: if a CancelRequest came meanwhile
 * (cancel_unsent), give the backend back and answer the message it waited
 * with 57014 (true); else false, and the message goes to the backend. */
bool client_cancel_unsent(tp_client *c);
/* Apply the client's startup parameters to its backend, then continue. */
void client_sync_params(tp_client *c);
bool client_param_is_reported(const char *name);
/* Change one of the client's parameters (value NULL: remove it); its startup
 * parameters are kept apart first. -1 when out of memory. */
int client_param_set(tp_client *c, const char *name, const char *value) __attribute__((warn_unused_result));
/* Relay input to the backend after linking (client.c). */
void client_process_input(tp_client *c);
/* Act on what is buffered, in whatever state the client is (the admin
 * console calls it when a PAUSE completes). */
void client_handle_input(tp_client *c);
