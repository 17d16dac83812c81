/*
 * dashboard: the page `status = html` serves, origin/dashboard.html, kept
 * in the binary (one self-contained page: no file to install, nothing
 * fetched from elsewhere).  The assembler's .incbin copies the file in at
 * build time; make runs at the top of the tree, where the path is
 * relative to, and rebuilds this file when the page changes.
 */
#include "origin/dashboard.h"

__asm__(
    "\t.section .rodata\n"
    "\t.balign 16\n"
    "\t.globl portico_dashboard_page\n"
    "\t.hidden portico_dashboard_page\n"
    "portico_dashboard_page:\n"
    "\t.incbin \"origin/dashboard.html\"\n"
    "\t.globl portico_dashboard_page_end\n"
    "\t.hidden portico_dashboard_page_end\n"
    "portico_dashboard_page_end:\n"
    "\t.previous\n");

extern const char portico_dashboard_page[], portico_dashboard_page_end[];

const char *
dashboard_page(size_t *len)
{
	*len = (size_t)(portico_dashboard_page_end - portico_dashboard_page);
	return portico_dashboard_page;
}
