import { existsSync, readFileSync } from 'node:fs'
import semver from 'semver'
import { describe, expect, it } from 'vitest'

const manifest = JSON.parse(readFileSync('package.json', 'utf8'))
const lockfile = JSON.parse(readFileSync('package-lock.json', 'utf8'))

describe('installation', () => {
  it('when npm installs the lockfile on the oldest Node that engines admits, then no package needs a newer one (no EBADENGINE)', () => {
    const oldest = semver.minVersion(manifest.engines.node)?.version as string
    const tooNew = Object.entries(
      lockfile.packages as Record<string, { engines?: { node?: string } }>,
    )
      .filter(([, entry]) => entry.engines?.node && !semver.satisfies(oldest, entry.engines.node))
      .map(([path, entry]) => `${path} needs node ${entry.engines?.node}`)
    expect(tooNew).toEqual([])
  })

  it("when npm installs, then onnxruntime-node's script that downloads CUDA libraries is denied, with no .npmrc key npm does not know", () => {
    expect(manifest.allowScripts['onnxruntime-node']).toBe(false)
    const npmrc = existsSync('.npmrc') ? readFileSync('.npmrc', 'utf8') : ''
    expect(npmrc).not.toContain('onnxruntime-node-install')
  })
})
