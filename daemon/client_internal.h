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
/* Its startup parameters, as it sent them (client.c). */
const tp_params *client_startup_params(const tp_client *c);
/* Append `s` as a SQL string literal (q '\'') or quoted identifier (q '"'). */
void client_append_quoted(proto_buf *b, const char *s, char q);
/* A RESET or DISCARD ALL of the client's reached its ReadyForQuery on b
 * (client_reset.c): set its startup values again before the ReadyForQuery
 * goes to it (true: b's caller sends nothing; it is sent when they are set),
 * or false when that cannot be done now (its next statement is queued, its
 * transaction failed) or nothing is to be set: the caller relays it. */
bool client_restore_after_reset(tp_client *c, tp_backend *b);
/* A ParameterStatus for `name` after the client's RESET: held back, as the
 * value is set again before the ReadyForQuery (client_reset.c). */
bool client_holds_reset_status(const tp_client *c, const char *name);
/* Relay input to the backend after linking (client.c). */
void client_process_input(tp_client *c);
/* Act on what is buffered, in whatever state the client is (the admin
 * console calls it when a PAUSE completes). */
void client_handle_input(tp_client *c);
