/*
 * libFuzzer target for the Sec-WebSocket-Extensions negotiation (common/ws.c).
 *
 * Input: byte 0 is the policy (bit 0 server_no_context_takeover, bit 1
 * client_no_context_takeover, bits 2-5 the client window asked for, 9 to
 * 15), the rest a header value, copied into an exactly-sized buffer.
 * When an offer is taken, the window sizes are within 9..15, and the
 * response parses again as an offer that is taken with the same outcome
 * (so it is well formed and names only the parameters it should).  A
 * client_max_window_bits in the response needs one in the offer.  Any
 * disagreement traps.
 */
#include "common/ws.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) __builtin_trap(); } while (0)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_pmd_policy pol;
	struct ws_pmd pmd = { 0 }, again = { 0 };
	char resp[200];

	if (size < 1)
		return 0;
	pol.server_no_ctx = data[0] & 1;
	pol.client_no_ctx = (data[0] >> 1) & 1;
	pol.client_wbits = (uint8_t)(9 + ((data[0] >> 2) & 15) % 7);
	char *hdr = malloc(size - 1 ? size - 1 : 1);
	CHECK(hdr != NULL);
	memcpy(hdr, data + 1, size - 1);
	int rc = ws_ext_negotiate(hdr, size - 1, &pol, &pmd);
	CHECK(rc == 0 || rc == -1);
	if (rc == 0 && pmd.on) {
		CHECK(pmd.server_wbits >= 9 && pmd.server_wbits <= 15);
		CHECK(pmd.client_wbits >= 8 && pmd.client_wbits <= 15);
		CHECK(pmd.client_wbits <= pol.client_wbits || pmd.client_wbits == 15);
		CHECK(!pol.server_no_ctx || pmd.server_no_ctx);
		CHECK(!pol.client_no_ctx || pmd.client_no_ctx);
		size_t n = ws_pmd_response(&pmd, resp, sizeof(resp));
		CHECK(n > 0 && strlen(resp) == n);
		if (pmd.client_wbits_sent) { /* parameter names in any case */
			char *low = malloc(size);
			CHECK(low != NULL);
			for (size_t i = 0; i + 1 < size; i++)
				low[i] = (char)((hdr[i] >= 'A' && hdr[i] <= 'Z') ? hdr[i] + 32 : hdr[i]);
			CHECK(memmem(low, size - 1, "client_max_window_bits", 22) != NULL);
			free(low);
		}
		struct ws_pmd_policy none = { 0, 0, 15 };
		CHECK(ws_ext_negotiate(resp, n, &none, &again) == 0 && again.on);
		CHECK(again.server_no_ctx == pmd.server_no_ctx && again.client_no_ctx == pmd.client_no_ctx);
		CHECK(again.server_wbits == pmd.server_wbits);
		CHECK(!pmd.client_wbits_sent || again.client_wbits == pmd.client_wbits);
	}
	free(hdr);
	return 0;
}
