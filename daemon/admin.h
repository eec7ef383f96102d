/* admin.h: the admin console (virtual database `tidepool`). */
#pragma once

#include <stdbool.h>

typedef struct tp_client tp_client;

bool admin_user_allowed(const char *user);
/* Logged in to the console: answer the startup. */
void admin_login(tp_client *c);
/* Run one simple Query of the console. */
void admin_query(tp_client *c, const char *sql);
