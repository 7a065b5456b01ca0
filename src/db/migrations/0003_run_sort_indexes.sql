-- Sort indexes of the runs list for the metrics users rank by. The list
-- sorts by COALESCE(metric, +1e300) ascending and by COALESCE(metric,
-- -1e300) descending (missing values last both ways), so each direction
-- has its expression index.
CREATE INDEX runs_output_tput_asc ON runs ((COALESCE(output_throughput, 1e300)), id);
CREATE INDEX runs_output_tput_desc ON runs ((COALESCE(output_throughput, -1e300)), id);
CREATE INDEX runs_request_tput_asc ON runs ((COALESCE(request_throughput, 1e300)), id);
CREATE INDEX runs_request_tput_desc ON runs ((COALESCE(request_throughput, -1e300)), id);
CREATE INDEX runs_total_token_tput_asc ON runs ((COALESCE(total_token_throughput, 1e300)), id);
CREATE INDEX runs_total_token_tput_desc ON runs ((COALESCE(total_token_throughput, -1e300)), id);
CREATE INDEX runs_p99_ttft_asc ON runs ((COALESCE(p99_ttft_ms, 1e300)), id);
CREATE INDEX runs_p99_ttft_desc ON runs ((COALESCE(p99_ttft_ms, -1e300)), id);
CREATE INDEX runs_median_ttft_asc ON runs ((COALESCE(median_ttft_ms, 1e300)), id);
CREATE INDEX runs_median_ttft_desc ON runs ((COALESCE(median_ttft_ms, -1e300)), id);
CREATE INDEX runs_p99_tpot_asc ON runs ((COALESCE(p99_tpot_ms, 1e300)), id);
CREATE INDEX runs_p99_tpot_desc ON runs ((COALESCE(p99_tpot_ms, -1e300)), id);
CREATE INDEX runs_median_tpot_asc ON runs ((COALESCE(median_tpot_ms, 1e300)), id);
CREATE INDEX runs_median_tpot_desc ON runs ((COALESCE(median_tpot_ms, -1e300)), id);
CREATE INDEX runs_p99_e2el_asc ON runs ((COALESCE(p99_e2el_ms, 1e300)), id);
CREATE INDEX runs_p99_e2el_desc ON runs ((COALESCE(p99_e2el_ms, -1e300)), id);
