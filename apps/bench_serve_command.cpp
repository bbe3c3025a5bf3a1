// vllm-cpp bench serve: a streaming load generator against any OpenAI-compatible
// /v1/completions endpoint (ours, vLLM, llama.cpp's server...). Requests arrive all at once
// (--request-rate inf) or as a Poisson process; each asks for exactly --output-len tokens
// (ignore_eos) of a random prompt of --input-len token ids. Prints request and token throughput
// and TTFT / TPOT / ITL mean, p50 and p99, and optionally writes them as JSON.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "apps/command_line.hpp"
#include "apps/subcommands.hpp"
#include "server/http_client.hpp"

namespace vllm::apps {
namespace {

constexpr FlagSpec kFlags[] = {
    {"--base-url", true, "the server, e.g. http://localhost:8000 (default)"},
    {"--model", true,
     "model name sent with each request (default: none, the server picks its own)"},
    {"--num-prompts", true, "requests to send (default 100)"},
    {"--request-rate", true, "requests per second (Poisson arrivals) or inf (default inf)"},
    {"--max-concurrency", true, "most requests in flight at once (default: unlimited)"},
    {"--input-len", true, "prompt length in tokens (default 128)"},
    {"--output-len", true, "tokens generated per request (default 32)"},
    {"--min-token-id", true, "random prompt token ids are drawn from [min, max) (default 1000)"},
    {"--max-token-id", true, "(default 20000; keep it below the model's vocabulary size)"},
    {"--seed", true, "seed of the prompts and arrival times (default 0)"},
    {"--api-key", true,
     "sent as 'Authorization: Bearer KEY' (default: $VLLM_API_KEY / $OPENAI_API_KEY)"},
    {"--json", true, "also write the results to this JSON file"},
    {"--help", false, "show this help"},
};

using Clock = std::chrono::steady_clock;

struct RequestResult {
  bool ok = false;
  std::string error;
  double ttft_s = 0;
  double latency_s = 0;
  std::vector<double> itl_s;  // gaps between streamed token chunks
  int64_t prompt_tokens = 0;
  int64_t output_tokens = 0;
};

struct Summary {
  double mean = 0, p50 = 0, p99 = 0;
};

Summary summarize(std::vector<double> values) {
  Summary s;
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  double sum = 0;
  for (double v : values) sum += v;
  s.mean = sum / static_cast<double>(values.size());
  // Linear interpolation between closest ranks (numpy's default percentile).
  auto percentile = [&](double q) {
    const double pos = q * static_cast<double>(values.size() - 1);
    const size_t lo = static_cast<size_t>(std::floor(pos));
    const size_t hi = std::min(lo + 1, values.size() - 1);
    return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
  };
  s.p50 = percentile(0.5);
  s.p99 = percentile(0.99);
  return s;
}

asio::awaitable<RequestResult> run_one(const server::HttpUrl& url, std::string body,
                                       std::vector<std::pair<std::string, std::string>> headers) {
  RequestResult result;
  const auto start = Clock::now();
  auto last = start;
  bool first = true;
  server::SseSplitter splitter;
  std::string error_body;
  try {
    const auto head = co_await server::http_post_streaming(
        url, "/v1/completions", body, headers, [&](std::string_view bytes) {
          if (error_body.size() < 2000) error_body.append(bytes.substr(0, 2000));
          for (const std::string& data : splitter.feed(bytes)) {
            if (data == "[DONE]") continue;
            const auto chunk = nlohmann::json::parse(data, nullptr, false);
            if (chunk.is_discarded()) continue;
            if (chunk.contains("usage") && chunk["usage"].is_object()) {
              result.prompt_tokens = chunk["usage"].value("prompt_tokens", int64_t{0});
              result.output_tokens = chunk["usage"].value("completion_tokens", int64_t{0});
            }
            if (!chunk.contains("choices") || chunk["choices"].empty()) continue;
            const auto& text = chunk["choices"][0]["text"];
            if (!text.is_string() || text.get<std::string>().empty()) continue;
            const auto now = Clock::now();
            if (first) {
              result.ttft_s = std::chrono::duration<double>(now - start).count();
              first = false;
            } else {
              result.itl_s.push_back(std::chrono::duration<double>(now - last).count());
            }
            last = now;
          }
        });
    result.latency_s = std::chrono::duration<double>(Clock::now() - start).count();
    result.ok = head.status == 200 && !first;
    if (head.status != 200) {
      result.error = fmt::format("HTTP {}: {}", head.status, error_body.substr(0, 300));
    } else if (first) {
      result.error = "no tokens streamed";
    }
  } catch (const std::exception& e) {
    result.error = e.what();
  }
  co_return result;
}

int run_bench_serve(const Args& raw_args) {
  const ParsedArgs args = ParsedArgs::parse(raw_args, kFlags);
  if (args.has("--help")) {
    std::printf("usage: vllm-cpp bench serve [flags]\n\n%s", flags_help(kFlags).c_str());
    return 0;
  }
  if (!args.positionals().empty()) throw UsageError("unexpected argument " + args.positionals()[0]);
  const server::HttpUrl url =
      server::HttpUrl::parse(args.value("--base-url").value_or("http://localhost:8000"));
  const int64_t num_prompts = args.int_value("--num-prompts", 100);
  const int64_t input_len = args.int_value("--input-len", 128);
  const int64_t output_len = args.int_value("--output-len", 32);
  const int64_t max_concurrency = args.int_value("--max-concurrency", 0);
  const int64_t min_id = args.int_value("--min-token-id", 1000);
  const int64_t max_id = args.int_value("--max-token-id", 20000);
  if (num_prompts < 1 || input_len < 1 || output_len < 1) {
    throw UsageError("--num-prompts, --input-len and --output-len must be >= 1");
  }
  if (min_id < 0 || max_id <= min_id) throw UsageError("need 0 <= --min-token-id < --max-token-id");
  if (max_concurrency < 0) throw UsageError("--max-concurrency must be >= 0");
  const std::string rate_text = args.value("--request-rate").value_or("inf");
  double rate = std::numeric_limits<double>::infinity();
  if (rate_text != "inf") {
    rate = args.float_value("--request-rate", 0);
    if (!(rate > 0)) throw UsageError("--request-rate must be > 0 or inf");
  }
  std::string api_key;
  if (auto key = args.value("--api-key")) {
    api_key = *key;
  } else if (const char* env = std::getenv("VLLM_API_KEY")) {
    api_key = env;
  } else if (const char* env2 = std::getenv("OPENAI_API_KEY")) {
    api_key = env2;
  }
  std::vector<std::pair<std::string, std::string>> headers;
  if (!api_key.empty()) headers.emplace_back("Authorization", "Bearer " + api_key);

  std::mt19937_64 rng(static_cast<uint64_t>(args.int_value("--seed", 0)));
  std::uniform_int_distribution<int64_t> token(min_id, max_id - 1);
  std::exponential_distribution<double> gap(std::isinf(rate) ? 1.0 : rate);
  std::vector<std::string> bodies;
  std::vector<double> arrivals;  // seconds after the start
  double t = 0;
  const std::string model = args.value("--model").value_or("");
  for (int64_t i = 0; i < num_prompts; ++i) {
    nlohmann::json prompt = nlohmann::json::array();
    for (int64_t k = 0; k < input_len; ++k) prompt.push_back(token(rng));
    nlohmann::json body = {{"prompt", prompt},
                           {"max_tokens", output_len},
                           {"min_tokens", output_len},
                           {"ignore_eos", true},
                           {"temperature", 0.0},
                           {"stream", true},
                           {"stream_options", {{"include_usage", true}}}};
    if (!model.empty()) body["model"] = model;
    bodies.push_back(body.dump());
    arrivals.push_back(t);
    if (!std::isinf(rate)) t += gap(rng);
  }

  asio::io_context io_context(1);
  std::vector<RequestResult> results(static_cast<size_t>(num_prompts));
  int64_t in_flight = 0;
  const auto start = Clock::now();
  auto driver = [&]() -> asio::awaitable<void> {
    asio::steady_timer timer(io_context);
    size_t remaining = results.size();
    asio::steady_timer all_done(io_context, Clock::time_point::max());
    for (size_t i = 0; i < results.size(); ++i) {
      timer.expires_at(start + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(arrivals[i])));
      co_await timer.async_wait(asio::use_awaitable);
      while (max_concurrency > 0 && in_flight >= max_concurrency) {
        timer.expires_after(std::chrono::milliseconds(1));
        co_await timer.async_wait(asio::use_awaitable);
      }
      ++in_flight;
      asio::co_spawn(io_context, run_one(url, bodies[i], headers),
                     [&, i](std::exception_ptr, RequestResult result) {
                       results[i] = std::move(result);
                       --in_flight;
                       if (--remaining == 0) all_done.cancel();
                     });
    }
    if (remaining > 0) {
      asio::error_code ignored;
      co_await all_done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  };
  asio::co_spawn(io_context, driver(), [](std::exception_ptr error) {
    if (error) std::rethrow_exception(error);
  });
  io_context.run();
  const double duration = std::chrono::duration<double>(Clock::now() - start).count();

  int64_t completed = 0, input_tokens = 0, output_tokens = 0;
  std::vector<double> ttft, tpot, itl, e2e;
  std::string first_error;
  for (const auto& r : results) {
    if (!r.ok) {
      if (first_error.empty()) first_error = r.error;
      continue;
    }
    ++completed;
    input_tokens += r.prompt_tokens;
    output_tokens += r.output_tokens;
    ttft.push_back(r.ttft_s * 1000);
    e2e.push_back(r.latency_s * 1000);
    if (r.output_tokens > 1) {
      tpot.push_back((r.latency_s - r.ttft_s) * 1000 / static_cast<double>(r.output_tokens - 1));
    }
    for (double g : r.itl_s) itl.push_back(g * 1000);
  }
  const Summary s_ttft = summarize(ttft), s_tpot = summarize(tpot), s_itl = summarize(itl),
                s_e2e = summarize(e2e);
  std::printf(
      "vllm-cpp bench serve: %s, %lld prompts x %lld input tokens -> %lld output tokens, "
      "request rate %s%s\n\n",
      (url.host + ":" + std::to_string(url.port)).c_str(), static_cast<long long>(num_prompts),
      static_cast<long long>(input_len), static_cast<long long>(output_len), rate_text.c_str(),
      max_concurrency > 0 ? fmt::format(", max concurrency {}", max_concurrency).c_str() : "");
  std::printf("| %-32s | %12s |\n|%s|%s|\n", "metric", "value", std::string(34, '-').c_str(),
              std::string(14, '-').c_str());
  auto row = [](const char* name, double v) { std::printf("| %-32s | %12.2f |\n", name, v); };
  std::printf("| %-32s | %5lld / %-4lld |\n", "successful requests",
              static_cast<long long>(completed), static_cast<long long>(num_prompts));
  row("benchmark duration (s)", duration);
  row("request throughput (req/s)", completed / duration);
  row("input token throughput (tok/s)", input_tokens / duration);
  row("output token throughput (tok/s)", output_tokens / duration);
  row("total token throughput (tok/s)", (input_tokens + output_tokens) / duration);
  std::printf(
      "\n| %-10s | %10s | %10s | %10s |\n|------------|------------|------------|-----------"
      "-|\n",
      "latency", "mean", "p50", "p99");
  auto lat = [](const char* name, const Summary& s) {
    std::printf("| %-10s | %10.2f | %10.2f | %10.2f |\n", name, s.mean, s.p50, s.p99);
  };
  lat("TTFT (ms)", s_ttft);
  lat("TPOT (ms)", s_tpot);
  lat("ITL (ms)", s_itl);
  lat("E2E (ms)", s_e2e);
  if (!first_error.empty()) {
    std::printf("\n%lld requests failed; first error: %s\n",
                static_cast<long long>(num_prompts - completed), first_error.c_str());
  }
  if (auto path = args.value("--json")) {
    auto summary_json = [](const Summary& s) {
      return nlohmann::json{{"mean", s.mean}, {"p50", s.p50}, {"p99", s.p99}};
    };
    nlohmann::json out = {
        {"base_url", args.value("--base-url").value_or("http://localhost:8000")},
        {"num_prompts", num_prompts},
        {"completed", completed},
        {"input_len", input_len},
        {"output_len", output_len},
        {"request_rate", rate_text},
        {"duration_s", duration},
        {"request_throughput", completed / duration},
        {"input_token_throughput", input_tokens / duration},
        {"output_token_throughput", output_tokens / duration},
        {"total_input_tokens", input_tokens},
        {"total_output_tokens", output_tokens},
        {"ttft_ms", summary_json(s_ttft)},
        {"tpot_ms", summary_json(s_tpot)},
        {"itl_ms", summary_json(s_itl)},
        {"e2e_latency_ms", summary_json(s_e2e)},
        {"first_error", first_error},
    };
    std::ofstream(*path) << out.dump(2) << "\n";
  }
  return completed == num_prompts ? 0 : 1;
}

}  // namespace

int run_bench(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::printf("usage: vllm-cpp bench serve|throughput|latency [flags]   (see --help of each)\n");
    return args.empty() ? 2 : 0;
  }
  const Args rest(args.begin() + 1, args.end());
  if (args[0] == "serve") return run_bench_serve(rest);
  if (args[0] == "throughput") return run_bench_throughput(rest);
  if (args[0] == "latency") return run_bench_latency(rest);
  throw UsageError("unknown benchmark '" + args[0] + "' (available: serve, throughput, latency)");
}

}  // namespace vllm::apps
