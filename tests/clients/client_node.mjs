// @kubernetes/client-node (npm) against Mosaic: CustomObjectsApi
// create/list/patch/delete of Tasks, a Watch resumed from a resourceVersion,
// an informer seeing adds and deletes, and CoreV1Api ConfigMaps and Secrets
// (stringData). Usage: node client_node.mjs NAMESPACE, with KUBECONFIG set.

import * as k8s from '@kubernetes/client-node';

const NS = process.argv[2];
const group = 'mosaic.dev';
const version = 'v1alpha1';
const plural = 'tasks';
const path = `/apis/${group}/${version}/namespaces/${NS}/${plural}`;

function check(cond, what) {
  if (!cond) throw new Error(what);
}

function task(name) {
  return {
    apiVersion: `${group}/${version}`,
    kind: 'Task',
    metadata: { name, labels: { client: 'node' } },
    spec: { command: 'sleep 30', resources: { cpus: '10m', memory: '16Mi' } },
  };
}

/** Resolves once `pred` holds, or rejects after `ms` naming `what`. */
function until(pred, ms, what) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const tick = () => {
      if (pred()) return resolve();
      if (Date.now() - start > ms) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}

async function main() {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const co = kc.makeApiClient(k8s.CustomObjectsApi);
  await core.createNamespace({ body: { metadata: { name: NS } } });

  // An informer over the namespace's tasks, started before any exists.
  const informed = { add: [], delete: [] };
  const informer = k8s.makeInformer(kc, path, () =>
    co.listNamespacedCustomObject({ group, version, namespace: NS, plural }),
  );
  informer.on('add', (o) => informed.add.push(o.metadata.name));
  informer.on('delete', (o) => informed.delete.push(o.metadata.name));
  let stopping = false;
  const errors = [];
  informer.on('error', (e) => {
    if (!stopping) errors.push(String(e));
  });
  await informer.start();

  await co.createNamespacedCustomObject({ group, version, namespace: NS, plural, body: task('first') });
  const listed = await co.listNamespacedCustomObject({ group, version, namespace: NS, plural, labelSelector: 'client=node' });
  check(listed.items.map((t) => t.metadata.name).join() === 'first', `tasks by label: ${JSON.stringify(listed.items)}`);
  const rv = listed.metadata.resourceVersion;

  await co.patchNamespacedCustomObject(
    { group, version, namespace: NS, plural, name: 'first', body: { metadata: { labels: { patched: 'yes' } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  const got = await co.getNamespacedCustomObject({ group, version, namespace: NS, plural, name: 'first' });
  check(got.metadata.labels.patched === 'yes', `merge patch: ${JSON.stringify(got.metadata)}`);

  // A watch resumed from the list's resourceVersion sees the patch and the second task.
  await co.createNamespacedCustomObject({ group, version, namespace: NS, plural, body: task('second') });
  const seen = [];
  const watch = new k8s.Watch(kc);
  const req = await watch.watch(
    path,
    { resourceVersion: rv },
    (type, obj) => seen.push(`${type} ${obj.metadata.name}`),
    () => {},
  );
  await until(() => seen.includes('MODIFIED first') && seen.includes('ADDED second'), 20000, `watch events (saw ${seen})`);
  req.abort();

  await until(() => informed.add.includes('first') && informed.add.includes('second'), 20000, `informer adds (saw ${informed.add})`);

  // ConfigMaps and Secrets through CoreV1Api.
  await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'settings' }, data: { a: '1' } } });
  const cm = await core.readNamespacedConfigMap({ namespace: NS, name: 'settings' });
  check(cm.data.a === '1', `configmap: ${JSON.stringify(cm)}`);
  await core.createNamespacedSecret({ namespace: NS, body: { metadata: { name: 'db' }, stringData: { password: 'hunter2' } } });
  const s = await core.readNamespacedSecret({ namespace: NS, name: 'db' });
  check(s.type === 'Opaque' && s.stringData === undefined, `secret: ${JSON.stringify(s)}`);
  check(Buffer.from(s.data.password, 'base64').toString() === 'hunter2', `secret data: ${JSON.stringify(s.data)}`);

  for (const name of ['first', 'second']) {
    await co.deleteNamespacedCustomObject({ group, version, namespace: NS, plural, name });
  }
  await until(() => informed.delete.includes('first') && informed.delete.includes('second'), 60000, `informer deletes (saw ${informed.delete})`);
  stopping = true;
  await informer.stop();
  check(errors.length === 0, `informer errors: ${errors}`);
  console.log('client-node: ok');
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(`client-node: FAILED: ${e.stack || e}`);
    process.exit(1);
  },
);
