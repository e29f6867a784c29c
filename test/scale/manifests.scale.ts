import { execFileSync } from 'node:child_process'
import { cpSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'
import { Job } from 'kubernetes-models/batch/v1/Job'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap'
import { Secret } from 'kubernetes-models/v1/Secret'
import { Service } from 'kubernetes-models/v1/Service'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { parse, parseAllDocuments } from 'yaml'
import { CONFIG_KEYS, loadConfig } from '../../src/config.js'
import { metricsIn, monitoringExpressions } from './monitoring.js'
import { ROOT, requireBinary, scratch } from './stack.js'

/**
 * The deployment files checked offline: Prometheus's own checker, compose's own parser, the
 * Kubernetes manifests built by kustomize and validated against the Kubernetes OpenAPI
 * schemas (kubernetes-models, vendored in npm packages), and their agreement with the
 * service's configuration.
 */

const KNOWN_KEYS = new Set(CONFIG_KEYS)

type Manifest = { kind: string; metadata: { name: string }; [key: string]: unknown }
type Container = {
  args: string[]
  ports: { name: string; containerPort: number }[]
  env?: { name: string; value: string }[]
  envFrom?: unknown[]
  startupProbe: { httpGet: { path: string; port: string } }
  livenessProbe: { httpGet: { path: string; port: string } }
  readinessProbe: { httpGet: { path: string; port: string } }
  lifecycle?: { preStop: { exec: { command: string[] } } }
}

const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  ConfigMap,
  Secret,
  Service,
  Deployment,
  Job,
  PodDisruptionBudget,
  HorizontalPodAutoscaler,
  ServiceMonitor,
}

/**
 * kubectl 1.21 or newer: older ones embed kustomize 2, which cannot read the overlays' `labels`
 * and `patches`. Debian bookworm's `kubernetes-client` is 1.20, so it is no source of one.
 */
function requireKubectl(): string {
  const wanted = 'kubectl 1.21 or newer (https://kubernetes.io/docs/tasks/tools/)'
  let kubectl: string
  try {
    kubectl = requireBinary('kubectl', 'kubernetes-client')
  } catch {
    throw new Error(`kubectl is not installed; the manifest tests need ${wanted}`)
  }
  const { clientVersion } = JSON.parse(
    execFileSync(kubectl, ['version', '--client', '--output=json'], { encoding: 'utf8' }),
  ) as { clientVersion: { major: string; minor: string; gitVersion: string } }
  if (Number(clientVersion.major) === 1 && Number.parseInt(clientVersion.minor, 10) < 21) {
    throw new Error(`${kubectl} is ${clientVersion.gitVersion}; the manifest tests need ${wanted}`)
  }
  return kubectl
}

function kustomize(overlay: string): Manifest[] {
  const kubectl = requireKubectl()
  const built = execFileSync(kubectl, ['kustomize', join(ROOT, 'deploy/k8s/overlays', overlay)], {
    encoding: 'utf8',
  })
  return parseAllDocuments(built).map((document) => document.toJS() as Manifest)
}

function container(manifests: Manifest[], kind: string, name: string): Container {
  const found = manifests.find((m) => m.kind === kind && m.metadata.name === name) as
    | { spec: { template: { spec: { containers: Container[] } } } }
    | undefined
  if (!found) throw new Error(`no ${kind} ${name}`)
  return found.spec.template.spec.containers[0] as Container
}

function configMap(manifests: Manifest[]): Record<string, string> {
  return (
    manifests.find((m) => m.kind === 'ConfigMap') as unknown as { data: Record<string, string> }
  ).data
}

describe('monitoring configuration', () => {
  it('when promtool checks the Prometheus config and rules, then both pass', () => {
    const promtool = requireBinary('promtool', 'prometheus')
    const config = execFileSync(
      promtool,
      ['check', 'config', join(ROOT, 'deploy/prometheus/prometheus.yml')],
      { encoding: 'utf8' },
    )
    expect(config).toContain('SUCCESS')
    const rules = execFileSync(
      promtool,
      ['check', 'rules', join(ROOT, 'deploy/prometheus/alerts.yml')],
      { encoding: 'utf8' },
    )
    expect(rules).toMatch(/SUCCESS: \d+ rules found/)
  })

  it('when a PromQL expression is read, then only its metric names come out', () => {
    expect(
      metricsIn(
        'sum by (le, route) (rate(http_request_duration_seconds_bucket{route!~".*/ws$"}[5m])) / sum(up)',
      ),
    ).toEqual(['http_request_duration_seconds_bucket', 'up'])
    expect(metricsIn('label_values(http_requests_total{job="api"}, instance)')).toEqual([
      'http_requests_total',
    ])
    expect(monitoringExpressions().length).toBeGreaterThan(20)
  })

  it('when Grafana provisions, then the datasource and the dashboard folder match compose', () => {
    const compose = parse(readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8'))
    const datasource = parse(
      readFileSync(join(ROOT, 'deploy/grafana/provisioning/datasources/prometheus.yaml'), 'utf8'),
    )
    const provider = parse(
      readFileSync(join(ROOT, 'deploy/grafana/provisioning/dashboards/orderflow.yaml'), 'utf8'),
    )
    expect(datasource.datasources[0].url).toBe('http://prometheus:9090')
    expect(compose.services.grafana.volumes).toContain(
      `./grafana/dashboards:${provider.providers[0].options.path}:ro`,
    )
    const dashboard = JSON.parse(
      readFileSync(join(ROOT, 'deploy/grafana/dashboards/orderflow.json'), 'utf8'),
    )
    for (const panel of dashboard.panels) {
      if (panel.type === 'row') continue
      expect(panel.datasource.uid).toBe(datasource.datasources[0].uid)
    }
  })
})

interface ComposeService {
  command?: string[]
  environment: Record<string, string>
  depends_on: Record<string, { condition: string }>
  healthcheck: { test: string[] }
  stop_grace_period?: string
  volumes?: string[]
}

describe('compose', () => {
  let work: ReturnType<typeof scratch>
  let resolved: { services: Record<string, ComposeService> }
  let compose: { services: Record<string, ComposeService> }

  beforeAll(() => {
    const binary = requireBinary('docker-compose', 'docker-compose')
    work = scratch('orderflow-compose-')
    cpSync(join(ROOT, 'deploy'), work.dir, { recursive: true })
    const example = readFileSync(join(ROOT, 'deploy/.env.example'), 'utf8')
    const filled = example.replace(
      /^(POSTGRES_PASSWORD|GRAFANA_ADMIN_PASSWORD|JWT_SECRET)=$/gm,
      '$1=x',
    )
    writeFileSync(join(work.dir, '.env'), filled)
    const output = execFileSync(
      binary,
      ['--env-file', join(work.dir, '.env'), '-f', join(work.dir, 'compose.yaml'), 'config'],
      { encoding: 'utf8', cwd: work.dir },
    )
    resolved = parse(output)
    // compose.yaml shares the service settings through YAML merge keys (`<<: *app`).
    compose = parse(readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8'), { merge: true })
  })
  afterAll(() => work?.cleanUp())

  const appServices = ['migrate', 'api-1', 'api-2', 'worker']

  it('when docker-compose resolves the file, then every service of the stack is there', () => {
    expect(Object.keys(resolved.services).sort()).toEqual(
      [...appServices, 'grafana', 'nginx', 'postgres', 'prometheus', 'redis'].sort(),
    )
  })

  it('when the service containers get their environment, then every variable is a config key', () => {
    for (const name of appServices) {
      const environment = resolved.services[name]?.environment as Record<string, string>
      const unknown = Object.keys(environment).filter((key) => !KNOWN_KEYS.has(key))
      expect(unknown, name).toEqual([])
    }
  })

  it('when an env file key is not the service own, then compose itself interpolates it', () => {
    const example = readFileSync(join(ROOT, 'deploy/.env.example'), 'utf8')
    const text = readFileSync(join(ROOT, 'deploy/compose.yaml'), 'utf8')
    for (const key of example.match(/^[A-Z_]+(?==)/gm) ?? []) {
      if (CONFIG_KEYS.includes(key)) continue
      expect(text, key).toContain(`\${${key}`)
    }
  })

  it('when the API environment is loaded as the service would, then it is valid for production', () => {
    const environment = resolved.services['api-1']?.environment as Record<string, string>
    const config = loadConfig({ ...environment, JWT_SECRET: 'x'.repeat(48) }, null)
    expect(config.NODE_ENV).toBe('production')
    expect(config.MIGRATE_ON_START).toBe(false)
    // The container's grace period outlasts the service's own drain and grace.
    const seconds = (name: string) =>
      Number(String(compose.services[name]?.stop_grace_period ?? '').replace('s', ''))
    expect(seconds('api-1') * 1000).toBeGreaterThan(
      config.SHUTDOWN_DRAIN_MS + config.SHUTDOWN_GRACE_MS,
    )
    const worker = resolved.services.worker?.environment as Record<string, string>
    expect(seconds('worker') * 1000).toBeGreaterThan(Number(worker.WORKER_SHUTDOWN_GRACE_MS) + 5000)
  })

  it('when the stack starts, then migrate runs once before the instances, with the image commands', () => {
    const services = resolved.services
    expect(services.migrate?.command).toEqual(['node', 'dist/cli.js', 'migrate'])
    expect(services.worker?.command).toEqual(['node', 'dist/worker.js'])
    expect(services['api-1']?.command).toBeUndefined()
    for (const name of ['api-1', 'api-2', 'worker']) {
      expect(services[name]?.depends_on.migrate?.condition).toBe('service_completed_successfully')
    }
    expect(services.redis?.command).toEqual(expect.arrayContaining(['noeviction', 'yes']))
  })

  it('when nginx and Prometheus address the instances, then the ports agree with PORT and WORKER_PORT', () => {
    const services = resolved.services
    const port = services['api-1']?.environment.PORT
    const workerPort = services.worker?.environment.WORKER_PORT
    const nginx = readFileSync(join(ROOT, 'deploy/nginx/nginx.conf'), 'utf8')
    expect(nginx).toContain(`server api-1:${port}`)
    expect(nginx).toContain(`server api-2:${port}`)
    const prometheus = parse(readFileSync(join(ROOT, 'deploy/prometheus/prometheus.yml'), 'utf8'))
    const targets = prometheus.scrape_configs.flatMap(
      (job: { static_configs: { targets: string[] }[] }) => job.static_configs[0]?.targets,
    )
    expect(targets).toEqual([`api-1:${port}`, `api-2:${port}`, `worker:${workerPort}`])
    expect(services['api-1']?.healthcheck.test).toEqual([
      'CMD',
      'node',
      'deploy/healthcheck.mjs',
      port,
    ])
    expect(services.worker?.healthcheck.test).toEqual([
      'CMD',
      'node',
      'deploy/healthcheck.mjs',
      workerPort,
    ])
  })
})

describe('Kubernetes manifests', () => {
  const overlays = ['dev', 'production']
  const built = Object.fromEntries(overlays.map((overlay) => [overlay, [] as Manifest[]]))

  beforeAll(() => {
    for (const overlay of overlays) built[overlay] = kustomize(overlay)
  })

  it('when each overlay is built, then every object validates against its Kubernetes schema', () => {
    for (const overlay of overlays) {
      const manifests = built[overlay] as Manifest[]
      expect(manifests.length).toBeGreaterThan(8)
      for (const manifest of manifests) {
        const Model = MODELS[manifest.kind]
        expect(Model, `${overlay}: ${manifest.kind} has no schema here`).toBeDefined()
        expect(() =>
          new (Model as NonNullable<typeof Model>)(manifest as never).validate(),
        ).not.toThrow()
      }
    }
  })

  it('when the schema validator meets a wrong type, then it refuses it', () => {
    const manifests = built.dev as Manifest[]
    const deployment = structuredClone(
      manifests.find((m) => m.kind === 'Deployment'),
    ) as unknown as {
      spec: { template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } } }
    }
    const port = deployment.spec.template.spec.containers[0]?.ports[0]
    if (port) port.containerPort = 'eight thousand'
    expect(() => new Deployment(deployment as never).validate()).toThrow(/containerPort/)
  })

  it('when the pods get their environment, then every variable is a config key and loads', () => {
    for (const overlay of overlays) {
      const manifests = built[overlay] as Manifest[]
      const data = configMap(manifests)
      expect(
        Object.keys(data).filter((key) => !KNOWN_KEYS.has(key)),
        overlay,
      ).toEqual([])
      for (const name of ['orderflow-api', 'orderflow-worker']) {
        const env = container(manifests, 'Deployment', name).env ?? []
        expect(env.filter((entry) => !KNOWN_KEYS.has(entry.name)).map((e) => e.name)).toEqual([])
      }
      const config = loadConfig({ ...data, JWT_SECRET: 'x'.repeat(48) }, null)
      expect(config.MIGRATE_ON_START).toBe(false)
    }
    const secret = (built.dev as Manifest[]).find((m) => m.kind === 'Secret') as unknown as {
      stringData: Record<string, string>
    }
    expect(Object.keys(secret.stringData).filter((key) => !KNOWN_KEYS.has(key))).toEqual([])
    // Production takes its Secret from outside the repository.
    expect((built.production as Manifest[]).some((m) => m.kind === 'Secret')).toBe(false)
  })

  it('when probes, ports and commands are read, then they agree with the configuration', () => {
    const manifests = built.production as Manifest[]
    const data = configMap(manifests)
    const api = container(manifests, 'Deployment', 'orderflow-api')
    expect(api.args).toEqual(['node', 'dist/server.js'])
    expect(api.ports).toEqual([{ name: 'http', containerPort: Number(data.PORT) }])
    expect(api.readinessProbe.httpGet).toEqual({ path: '/ready', port: 'http' })
    expect(api.livenessProbe.httpGet).toEqual({ path: '/health', port: 'http' })
    expect(api.startupProbe.httpGet).toEqual({ path: '/health', port: 'http' })

    const worker = container(manifests, 'Deployment', 'orderflow-worker')
    expect(worker.args).toEqual(['node', 'dist/worker.js'])
    const workerPort = worker.env?.find((entry) => entry.name === 'WORKER_PORT')?.value
    expect(worker.ports).toEqual([{ name: 'metrics', containerPort: Number(workerPort) }])
    expect(worker.livenessProbe.httpGet).toEqual({ path: '/health', port: 'metrics' })

    expect(container(manifests, 'Job', 'orderflow-migrate').args).toEqual([
      'node',
      'dist/cli.js',
      'migrate',
    ])
    const monitor = manifests.find((m) => m.kind === 'ServiceMonitor') as unknown as {
      spec: { endpoints: { port: string }[] }
    }
    expect(monitor.spec.endpoints.map((e: { port: string }) => e.port).sort()).toEqual([
      'http',
      'metrics',
    ])
  })

  it('when a pod is stopped, then preStop matches SHUTDOWN_DRAIN_MS and the grace period covers the shutdown', () => {
    const manifests = built.production as Manifest[]
    const data = configMap(manifests)
    const api = container(manifests, 'Deployment', 'orderflow-api')
    const preStop = api.lifecycle?.preStop.exec.command
    expect(preStop?.[0]).toBe('sleep')
    const preStopMs = Number(preStop?.[1]) * 1000
    expect(preStopMs).toBe(Number(data.SHUTDOWN_DRAIN_MS))
    const deployment = manifests.find(
      (m) => m.kind === 'Deployment' && m.metadata.name === 'orderflow-api',
    ) as unknown as {
      spec: { template: { spec: { terminationGracePeriodSeconds: number } } }
    }
    expect(deployment.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      preStopMs + Number(data.SHUTDOWN_DRAIN_MS) + Number(data.SHUTDOWN_GRACE_MS),
    )
    // The worker lets running jobs finish for WORKER_SHUTDOWN_GRACE_MS, then closes (5 s).
    const worker = manifests.find(
      (m) => m.kind === 'Deployment' && m.metadata.name === 'orderflow-worker',
    ) as unknown as { spec: { template: { spec: { terminationGracePeriodSeconds: number } } } }
    const workerGrace = container(manifests, 'Deployment', 'orderflow-worker').env?.find(
      (entry) => entry.name === 'WORKER_SHUTDOWN_GRACE_MS',
    )?.value
    expect(worker.spec.template.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(
      Number(workerGrace) + 5000,
    )
  })
})

describe('image', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8')

  it('when the image runs, then it is the API as a non-root user, stopped by SIGTERM, health-checked', () => {
    const runtime = dockerfile.slice(dockerfile.lastIndexOf('\nFROM '))
    expect(runtime).toMatch(/^USER node$/m)
    expect(runtime).toContain('STOPSIGNAL SIGTERM')
    expect(runtime).toContain('CMD ["node", "dist/server.js"]')
    expect(runtime).toMatch(/HEALTHCHECK .*\n\s+CMD \["node", "deploy\/healthcheck.mjs"\]/)
    expect(runtime).toContain('EXPOSE 8000')
    expect(dockerfile).toContain('npm ci --omit=dev --ignore-scripts')
    // The console is built in the build stage (Vite is a dev dependency); only its output ships.
    expect(runtime).toContain(
      'COPY --from=build --chown=root:root /app/console/dist ./console/dist',
    )
  })

  it('when the build context is sent, then tests, data and secrets stay out', () => {
    const ignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8').split('\n')
    // Everything is excluded, then only what the build reads is let back in.
    expect(ignore).toContain('*')
    const allowed = ignore.filter((line) => line.startsWith('!'))
    expect(allowed.some((line) => /test|data|\.env/.test(line))).toBe(false)
    expect(ignore).toContain('**/.env')
  })

  it('when ONNX Runtime loads in the image, then its binary for this platform is where it looks', () => {
    // onnxruntime-node requires bin/napi-v6/<platform>/<arch>/onnxruntime_binding.node, which
    // its package ships; the image keeps only linux/<arch>, the path this asserts exists.
    const binding = readFileSync(
      join(ROOT, 'node_modules/onnxruntime-node/dist/binding.js'),
      'utf8',
    )
    expect(binding).toContain(`../bin/napi-v6/\${process.platform}/\${process.arch}/`)
    expect(dockerfile).toContain(`node_modules/onnxruntime-node/bin/napi-v6/linux/\${arch}`)
  })
})
