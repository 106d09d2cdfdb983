# SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
# Prometheus rules and Grafana dashboard (issue 5): `make check-rules` runs
# promtool check rules (output must be clean), promtool test rules, and
# checks the dashboard: well-formed JSON, the shape Grafana needs, and every
# PromQL expression in it parsed by promtool. Part of `make test`.

PROMTOOL ?= promtool
JQ ?= jq
PROM_RULES := deploy/prometheus/kbreaker-recording.yml deploy/prometheus/kbreaker-alerts.yml
PROM_RULES_TEST := deploy/prometheus/kbreaker-rules.test.yml
GRAFANA_DASHBOARD := deploy/grafana/kbreaker-dashboard.json

DEB_PKGS += prometheus jq
TEST_HOOKS += check-rules

.PHONY: check-rules check-dashboard

# promtool prints "Checking FILE" and "  SUCCESS: N rules found" per file;
# anything else (a lint warning, a duplicate rule) fails the target.
check-rules: check-dashboard | $(BUILD)
	@echo "  PROMTOOL check rules"
	$(Q)$(PROMTOOL) check rules $(PROM_RULES) > $(BUILD)/check-rules.out 2>&1 || \
		{ cat $(BUILD)/check-rules.out; exit 1; }
	$(Q)if grep -Ev '^(Checking .*|  SUCCESS: [0-9]+ rules found|)$$' $(BUILD)/check-rules.out; then \
		echo "promtool check rules: unexpected output (above)"; exit 1; fi
	@echo "  PROMTOOL test rules $(PROM_RULES_TEST)"
	$(Q)$(PROMTOOL) test rules $(PROM_RULES_TEST) > $(BUILD)/test-rules.out 2>&1 || \
		{ cat $(BUILD)/test-rules.out; exit 1; }

# The jq program names the first failed property; then every target's expr,
# with Grafana's variables replaced by values, becomes a recording rule so
# promtool's parser checks it.
DASHBOARD_JQ := \
	def panels: [.panels[] | select(.type != "row")]; \
	def ds_ok: . == {"type": "prometheus", "uid": "$${datasource}"}; \
	if (.schemaVersion | type) != "number" or .schemaVersion < 36 then "schemaVersion missing or < 36" \
	elif .uid != "kbreaker" or (.title | length) == 0 then "uid or title" \
	elif ([.templating.list[] | select(.name == "datasource" and .type == "datasource" and .query == "prometheus")] | length) != 1 then "no datasource variable" \
	elif ([.templating.list[] | select(.name == "circuit_name" and .type == "query")] | length) != 1 then "no circuit_name variable" \
	elif ([.templating.list[] | select(.datasource) | .datasource | ds_ok] | all | not) then "a variable not on $${datasource}" \
	elif ([.panels[].id] | length) != ([.panels[].id] | unique | length) then "duplicate panel id" \
	elif (panels | map(.datasource | ds_ok) | all | not) then "a panel not on $${datasource}" \
	elif ([panels[].targets[] | (.datasource | ds_ok) and (.refId | length) > 0 and (.expr | length) > 0] | all | not) then "a target without datasource, refId or expr" \
	elif ([panels[].targets[] | select(.expr | test("circuit_name") and (test("circuit_name=~\\\"\\$$circuit_name\\\"") | not))] | length) > 0 then "a per-circuit query ignores $$circuit_name" \
	elif ([.panels[] | .gridPos | .x + .w <= 24] | all | not) then "a panel wider than the grid" \
	elif ([panels[].type] | (index("state-timeline") and index("heatmap")) | not) then "no state timeline or heatmap" \
	else empty end

check-dashboard: | $(BUILD)
	@echo "  JQ       $(GRAFANA_DASHBOARD)"
	$(Q)$(JQ) empty $(GRAFANA_DASHBOARD)
	$(Q)err=$$($(JQ) -r '$(DASHBOARD_JQ)' $(GRAFANA_DASHBOARD)) && [ -z "$$err" ] || \
		{ echo "$(GRAFANA_DASHBOARD): $$err"; exit 1; }
	$(Q)$(JQ) '{groups: [{name: "dashboard", rules: [[.panels[].targets[]?.expr, .annotations.list[].expr | strings] | to_entries[] | {record: "dashboard:expr_\(.key)", expr: .value}]}]}' \
		$(GRAFANA_DASHBOARD) | sed -e 's/\$$__rate_interval/1m/g; s/\$$__interval/1m/g; s/\$$[a-z_]*/.*/g' \
		> $(BUILD)/dashboard-exprs.json
	$(Q)$(PROMTOOL) check rules $(BUILD)/dashboard-exprs.json > $(BUILD)/check-dashboard.out 2>&1 || \
		{ cat $(BUILD)/check-dashboard.out; exit 1; }
