// The one list of probe kinds. Adding a kind is a folder under probes/ (its defineKind in
// index.ts) and one line here; the config schema, the probes the runner calls, the metrics, the
// status page's words and the docs tests all read this list.
import type { z } from 'zod';
import amqp from './amqp/index.js';
import dicom from './dicom/index.js';
import dns from './dns/index.js';
import fhir from './fhir/index.js';
import http from './http/index.js';
import icmp from './icmp/index.js';
import type { KindDefinition } from './kit/kind.js';
import type { Probe } from './types.js';
import ldap from './ldap/index.js';
import mllp from './mllp/index.js';
import ntp from './ntp/index.js';
import oidc from './oidc/index.js';
import queue from './queue/index.js';
import radius from './radius/index.js';
import tcp from './tcp/index.js';

import snmp from './snmp/index.js';

export const KIND_LIST = [tcp, dns, http, oidc, ldap, mllp, queue, amqp, ntp, icmp, dicom, radius, snmp, fhir] as const;

type AnyKind = (typeof KIND_LIST)[number];
export type Kind = AnyKind['name'];
export type KindOf<K extends Kind> = Extract<AnyKind, { name: K }>;
/** Each kind's parsed options. */
export type KindOptions = { [K in Kind]: z.output<KindOf<K>['options']> };
/** Each kind's parsed target. */
export type KindTarget = { [K in Kind]: z.output<KindOf<K>['target']['schema']> };

export const KINDS: readonly Kind[] = KIND_LIST.map((k) => k.name);

/** Kinds by name. */
export const KIND: { readonly [K in Kind]: KindOf<K> } = Object.fromEntries(KIND_LIST.map((k) => [k.name, k])) as never;

/** Each kind's options schema by name (tests and tools parse a kind's options with it). */
export const KIND_OPTIONS: { readonly [K in Kind]: KindOf<K>['options'] } = Object.fromEntries(KIND_LIST.map((k) => [k.name, k.options])) as never;

/** A kind's declaration by a name read at run time (a check's `kind`); undefined for an unknown one. */
export function kindNamed(name: string): KindDefinition<string, z.ZodType> | undefined {
  return (KIND as unknown as Record<string, KindDefinition<string, z.ZodType> | undefined>)[name];
}

/** Each kind's probe, typed by its options and target. */
export type KindProbe<K extends Kind> = Probe<KindOptions[K], KindTarget[K]>;

const loading = new Map<string, Promise<Probe<unknown>>>();
const loaded = new Map<string, Probe<unknown>>();

/**
 * A kind's probe code, imported the first time it is asked for (its definition, index.ts, is
 * light: schema, words, metrics). So a probe thread holds only the code of the kinds its checks
 * have, and a main thread whose checks all run on probe threads holds none: at 10,000 checks of
 * two kinds that is ~15 MiB less resident memory (bench/RESULTS.md, 2026-12-06).
 */
export function loadProbe<K extends Kind>(kind: K): Promise<KindProbe<K>> {
  let p = loading.get(kind);
  if (!p) {
    p = (KIND[kind].load() as Promise<Probe<unknown>>).then((probe) => {
      loaded.set(kind, probe);
      return probe;
    });
    // A failed import is tried again on the next run (and reported by that run).
    p.catch(() => loading.delete(kind));
    loading.set(kind, p);
  }
  return p;
}

/** A kind's probe if its code is loaded already, else undefined (then loadProbe). */
export function loadedProbe<K extends Kind>(kind: K): KindProbe<K> | undefined {
  return loaded.get(kind);
}

/** Every failure reason a kind declares, and "internal" (the runner's, for a probe's own bug): the closed set of the `reason` label. */
export const ALL_FAILURE_REASONS: readonly string[] = [...new Set([...KIND_LIST.flatMap((k) => k.reasons), 'internal'])];
/** Every degraded reason a kind declares, and "slow" (the detector's, for every kind). */
export const ALL_DEGRADED_REASONS: readonly string[] = [...new Set([...KIND_LIST.flatMap((k) => k.degradedReasons), 'slow'])];
