/*
 * Unit tests for common/pipeline.c without a connection: the request
 * phase's order, short-circuit and pause; per-exchange state and its free
 * at the end; the log phase (once, 499 without a response, only for the
 * middleware that ran); and the access-log fields with their bounds.
 */
#include "common/config.h"
#include "common/exchange.h"
#include "common/pipeline.h"
#include "t/unit/tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What the fake middleware did, in order: "r0 r1 h1 h0 l0 l1 f0". */
static char trace[256];

struct fake_conf {
	int id;
	int answer;                      /* request returns this */
};

static void
note(const char *what, int id)
{
	snprintf(trace + strlen(trace), sizeof(trace) - strlen(trace), "%s%s%d",
	    trace[0] ? " " : "", what, id);
}

static int
fake_request(struct request *r, const void *conf)
{
	const struct fake_conf *fc = conf;
	int *st = malloc(sizeof(*st));

	*st = fc->id;
	note("r", fc->id);
	if (mw_state_set(r, st) < 0)
		free(st);
	return fc->answer;
}

static void
fake_response_head(struct request *r, const void *conf)
{
	(void)r;
	note("h", ((const struct fake_conf *)conf)->id);
}

static void
fake_log(struct request *r, const void *conf)
{
	const struct fake_conf *fc = conf;
	const int *st = mw_state(r);
	char v[16];
	int n = snprintf(v, sizeof(v), "%d/%d", st != NULL ? *st : -1, r->status);

	note("l", fc->id);
	http_log_field(r, fc->id == 0 ? "zero" : fc->id == 1 ? "one" : "two", v, (size_t)n);
}

static void
fake_free_state(void *state)
{
	note("f", *(int *)state);
	free(state);
}

static const struct mw_ops fake_ops = {
	.type = "fake",
	.request = fake_request,
	.response_head = fake_response_head,
	.log = fake_log,
	.free_state = fake_free_state,
};

static struct fake_conf confs[3];
static struct mw mws[3];
static struct conf_section secs[3];
static struct conf_route route;

static void
setup(struct request *r, int answer_at, int pause_at)
{
	memset(r, 0, sizeof(*r));
	trace[0] = '\0';
	route.nmw = 3;
	for (int i = 0; i < 3; i++) {
		confs[i] = (struct fake_conf){ i, i == answer_at ? MW_ANSWERED :
			i == pause_at ? MW_PAUSE : MW_NEXT };
		mws[i] = (struct mw){ &fake_ops, &confs[i], "fake" };
		secs[i].data = &mws[i];
		route.mw[i] = &secs[i];
	}
	r->route = &route;
}

static void
fields_ok(struct request *r, const char *want)
{
	char got[512] = "";
	const char *k, *v;
	size_t kl, vl;
	unsigned it = 0;

	while (http_log_field_next(r, &it, &k, &kl, &v, &vl))
		snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%.*s=%.*s", got[0] ? " " : "",
		    (int)kl, k, (int)vl, v);
	is_str(got, want, "log fields: %s", want);
}

int
main(void)
{
	struct request r;

	setup(&r, -1, -1);
	is(pipeline_request(&r), MW_NEXT, "a chain that goes through: MW_NEXT");
	is(r.mw_ran, 3, "... all three ran");
	pipeline_response_head(&r);
	r.status = 200;
	r.flags |= REQ_STARTED;
	pipeline_log(&r);
	pipeline_log(&r);
	fields_ok(&r, "zero=0/200 one=1/200 two=2/200");
	pipeline_end(&r);
	is_str(trace, "r0 r1 r2 h2 h1 h0 l0 l1 l2 f0 f1 f2",
	    "request in order, response last first, log once in order, each state freed once");
	ok(r.mwx == NULL, "the exchange's pipeline state is gone");

	setup(&r, 1, -1);
	is(pipeline_request(&r), MW_ANSWERED, "the second answers: MW_ANSWERED");
	is(r.mw_ran, 2, "... the third never ran");
	pipeline_response_head(&r);
	pipeline_log(&r);
	pipeline_end(&r);
	is_str(trace, "r0 r1 h1 h0 l0 l1 f0 f1", "short-circuit: phases only for those that ran");

	setup(&r, -1, 0);
	is(pipeline_request(&r), MW_PAUSE, "the first pauses: MW_PAUSE");
	ok(r.flags & REQ_MW_PAUSED, "... the request is marked paused");
	/* The client goes away: log (status 499) and end, no resume. */
	pipeline_log(&r);
	is(r.status, 499, "log phase without a response: status 499");
	fields_ok(&r, "zero=0/499");
	pipeline_end(&r);
	is_str(trace, "r0 l0 f0", "cut while paused: the log phase and the state's free, nothing else");

	/* Bounds of the fields. */
	setup(&r, -1, -1);
	int n = 0;
	while (http_log_field(&r, "k", "v", 1) == 0)
		n++;
	is(n, MW_LOG_FIELDS, "at most MW_LOG_FIELDS fields");
	pipeline_end(&r);
	setup(&r, -1, -1);
	static char big[MW_LOG_BYTES];
	memset(big, 'x', sizeof(big));
	is(http_log_field(&r, "key", big, sizeof(big) - 3), 0, "MW_LOG_BYTES in all: fits exactly");
	is(http_log_field(&r, "k", "", 0), -1, "... and not one byte more");
	pipeline_end(&r);
	return done_testing();
}
