/*
 * dashboard: the status page of `status = html` (origin/dashboard.html,
 * built into the binary).  It polls the route's own JSON
 * (PATH?format=json) and draws it; see STATUS DOCUMENT in portico.ini(5).
 */
#ifndef PORTICO_DASHBOARD_H
#define PORTICO_DASHBOARD_H

#include <stddef.h>

/* The page's bytes (not NUL-terminated) and their count. */
const char *dashboard_page(size_t *len);

#endif
