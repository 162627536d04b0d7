-- POST /api/v1/auth/refresh as real clients do: each connection owns one session and always presents the
-- refresh token it received last (tokens rotate on every use). The harness runs one thread per connection,
-- so a thread's requests are strictly sequential, and writes one fresh token per thread to
-- $BENCH_REFRESH_TOKENS before every run.
local next_index = 0

function setup(thread)
    next_index = next_index + 1
    thread:set("index", next_index)
end

function init(args)
    local position = 0
    -- `assert` returns all its arguments; `io.lines` would take the message as a read format.
    local path = assert(os.getenv("BENCH_REFRESH_TOKENS"), "BENCH_REFRESH_TOKENS unset")
    for line in io.lines(path) do
        position = position + 1
        if position == index then token = line end
    end
    assert(token, "no refresh token for thread " .. tostring(index))
    wrk.method = "POST"
    wrk.headers["Content-Type"] = "application/json"
end

function request()
    return wrk.format(nil, nil, nil, '{"refresh_token":"' .. token .. '"}')
end

function response(status, headers, body)
    if status == 200 then
        token = string.match(body, '"refresh_token":"([^"]+)"') or token
    end
end
