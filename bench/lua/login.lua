-- POST /api/v1/auth/login with the benchmark account's (correct) credentials: each request verifies an
-- Argon2id hash at the default cost and starts a session.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format('{"email":"%s","password":"%s"}',
    assert(os.getenv("BENCH_EMAIL"), "BENCH_EMAIL unset"), assert(os.getenv("BENCH_PASSWORD"), "BENCH_PASSWORD unset"))
