// Makes deploy/kubernetes/base/common/prometheusrule.yaml from deploy/prometheus/vakt-rules.yml:
// the same rule groups (comments kept) under spec.groups of a Prometheus Operator PrometheusRule,
// so the rules have one source of truth. Run `npm run gen:kubernetes` after changing the rules;
// test/unit/kubernetes.test.ts fails while the two differ.
import { readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Document, isSeq, parseDocument } from 'yaml';

const HERE = fileURLToPath(new URL('.', import.meta.url));
export const RULES_FILE = resolve(HERE, '../prometheus/vakt-rules.yml');
export const PROMETHEUS_RULE_FILE = resolve(HERE, 'base/common/prometheusrule.yaml');
export const REGENERATE = 'npm run gen:kubernetes';

const HEADER = [
  ` Generated from deploy/prometheus/vakt-rules.yml by deploy/kubernetes/generate-rules.ts: do not edit.`,
  ` Change the rules there, then run \`${REGENERATE}\`.`,
  ` A Prometheus picks this up when its ruleSelector matches these labels: add the label yours`,
  ` selects (often release: <helm release>) with a patch in your overlay.`,
].join('\n');

/** The PrometheusRule (YAML text) holding the rule groups of a Prometheus rules file. */
export function prometheusRule(rulesText: string): string {
  const source = parseDocument(rulesText, { prettyErrors: false });
  if (source.errors.length > 0) throw new Error(`${RULES_FILE}: ${source.errors[0]!.message}`);
  const groups = source.get('groups', true);
  if (!isSeq(groups)) throw new Error(`${RULES_FILE}: expected a list under groups`);
  const doc = new Document({
    apiVersion: 'monitoring.coreos.com/v1',
    kind: 'PrometheusRule',
    metadata: { name: 'vakt', labels: { 'app.kubernetes.io/name': 'vakt', 'app.kubernetes.io/component': 'rules' } },
    spec: { groups: [] },
  });
  doc.setIn(['spec', 'groups'], groups);
  doc.commentBefore = HEADER;
  return doc.toString({ lineWidth: 0 });
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  writeFileSync(PROMETHEUS_RULE_FILE, prometheusRule(readFileSync(RULES_FILE, 'utf8')));
  process.stdout.write(`wrote ${PROMETHEUS_RULE_FILE}\n`);
}
