// Runs encrypt and decrypt jobs with the official AWS Encryption SDK for
// JavaScript (@aws-crypto/client-node), for interop_test.go.
//
//   node esdk.js MANIFEST.json
//
// The manifest is {"endpoint": URL or "", "jobs": [JOB, ...]} where a JOB is
//   {"op": "encrypt"|"decrypt", "in": FILE, "out": FILE,
//    "keyring": {"kms": [KEY ARN, ...]} | {"rawAes": {"namespace", "name", "keyHex"}},
//    "suite": 1144|1400, "frameLength": N, "context": {k: v}}
// KMS requests go to the endpoint with region us-east-1 and the credentials
// of the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY).
// It prints one JSON result per job, in order, as a JSON array:
//   {"ok": true, "context": {...}, "suite": N} or {"ok": false, "error": "..."}
'use strict'

const fs = require('fs')
const {
  buildClient,
  CommitmentPolicy,
  KmsKeyringNode,
  RawAesKeyringNode,
  RawAesWrappingSuiteIdentifier,
  getClient,
  KMS,
} = require('@aws-crypto/client-node')

const { encrypt, decrypt } = buildClient(CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT)

function keyring(spec, endpoint) {
  if (spec.kms) {
    const clientProvider = getClient(KMS, {
      endpoint,
      region: 'us-east-1',
      maxAttempts: 1,
    })
    return new KmsKeyringNode({
      generatorKeyId: spec.kms[0],
      keyIds: spec.kms.slice(1),
      clientProvider,
    })
  }
  if (spec.rawAes) {
    return new RawAesKeyringNode({
      keyNamespace: spec.rawAes.namespace,
      keyName: spec.rawAes.name,
      // The SDK insists on a key that owns its whole ArrayBuffer.
      unencryptedMasterKey: new Uint8Array(Buffer.from(spec.rawAes.keyHex, 'hex')),
      wrappingSuite: RawAesWrappingSuiteIdentifier.AES256_GCM_IV12_TAG16_NO_PADDING,
    })
  }
  throw new Error('job has no keyring')
}

async function run(job, endpoint) {
  const kr = keyring(job.keyring, endpoint)
  if (job.op === 'encrypt') {
    const { result, messageHeader } = await encrypt(kr, fs.createReadStream(job.in), {
      suiteId: job.suite,
      encryptionContext: job.context || {},
      frameLength: job.frameLength,
    })
    fs.writeFileSync(job.out, result)
    return { ok: true, context: messageHeader.encryptionContext, suite: messageHeader.suiteId }
  }
  if (job.op === 'decrypt') {
    const { plaintext, messageHeader } = await decrypt(kr, fs.createReadStream(job.in))
    fs.writeFileSync(job.out, plaintext)
    return { ok: true, context: messageHeader.encryptionContext, suite: messageHeader.suiteId }
  }
  throw new Error('unknown op ' + job.op)
}

async function main() {
  const manifest = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
  const results = []
  for (const job of manifest.jobs) {
    try {
      results.push(await run(job, manifest.endpoint || undefined))
    } catch (e) {
      results.push({ ok: false, error: String((e && e.stack) || e) })
    }
  }
  process.stdout.write(JSON.stringify(results))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
