-- An authenticated GET (/api/v1/auth/me, /api/v1/auth/sessions) with the access token the harness obtained
-- by logging in.
wrk.headers["Authorization"] = "Bearer " .. assert(os.getenv("BENCH_ACCESS_TOKEN"), "BENCH_ACCESS_TOKEN unset")
