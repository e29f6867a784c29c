import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml'
import { ROOT } from './stack.js'

const PROMQL_WORDS = new Set([
  // aggregations, functions and keywords used in the repository's expressions
  'sum',
  'min',
  'max',
  'avg',
  'count',
  'rate',
  'irate',
  'increase',
  'histogram_quantile',
  'by',
  'without',
  'and',
  'or',
  'unless',
  'on',
  'ignoring',
  'bool',
  'offset',
  'label_values',
])

/** The metric names a PromQL expression reads (label names, functions and numbers removed). */
export function metricsIn(expression: string): string[] {
  const bare = expression
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ' ')
    // Grafana's `label_values(metric, label)`: the second argument is a label.
    .replace(/\blabel_values\(([^,)]*),[^)]*\)/g, ' $1 ')
    .replace(/"[^"]*"/g, ' ')
  return (bare.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []).filter(
    (word) => !PROMQL_WORDS.has(word) && !/^\d/.test(word),
  )
}

interface DashboardPanel {
  targets?: { expr: string }[]
  /** A collapsed row keeps its panels inside it. */
  panels?: DashboardPanel[]
}

/**
 * Every PromQL expression of the alert rules, of the dashboard panels (collapsed rows
 * included) and of the dashboard's variables (`label_values(metric, label)`).
 */
export function monitoringExpressions(): string[] {
  const rules = parse(readFileSync(join(ROOT, 'deploy/prometheus/alerts.yml'), 'utf8')) as {
    groups: { rules: { expr: string }[] }[]
  }
  const dashboard = JSON.parse(
    readFileSync(join(ROOT, 'deploy/grafana/dashboards/orderflow.json'), 'utf8'),
  ) as { panels: DashboardPanel[]; templating?: { list: { query?: { query?: string } }[] } }
  const panelExpressions = (panel: DashboardPanel): string[] => [
    ...(panel.targets ?? []).map((target) => target.expr),
    ...(panel.panels ?? []).flatMap(panelExpressions),
  ]
  return [
    ...rules.groups.flatMap((group) => group.rules.map((rule) => rule.expr)),
    ...dashboard.panels.flatMap(panelExpressions),
    ...(dashboard.templating?.list ?? []).flatMap((variable) => variable.query?.query ?? []),
  ]
}

export function metricNamesUsed(): Set<string> {
  // `up` is Prometheus's own series for every target.
  return new Set(
    monitoringExpressions()
      .flatMap(metricsIn)
      .filter((name) => name !== 'up'),
  )
}
