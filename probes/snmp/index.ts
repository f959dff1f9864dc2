// The snmp kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { AUTH_CODE_LABEL, CONNECTION_VALUES, defineKind, NETWORK_REASONS, type KindWords, type Language } from '../kit/kind.js';
import { LOGIN_WORDS } from '../kit/words.js';
import { options, snmpTarget, PHASES } from './options.js';

/** A device's own state as it reports it: a refused v3 user reads as a refused login, with why. */
const words = (notAnswering: string, mismatch: string, noSuch: string, language: Language): KindWords => ({
  notAnswering,
  reasons: { snmp_mismatch: mismatch, snmp_no_such: noSuch },
  ...(LOGIN_WORDS[language].refusals ? { refusals: LOGIN_WORDS[language].refusals } : {}),
});

export default defineKind({
  name: 'snmp',
  summary:
    "Network equipment reports its own state over SNMP (v2c or v3 USM): a GET of configured OIDs, each checked against what it must be (a firewall member's HA state, an uplink's oper status).",
  target: { schema: snmpTarget, multiple: false },
  options,
  secretOptions: ['community', 'authKey', 'privKey'],
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'auth', 'snmp_mismatch', 'snmp_no_such', 'snmp_error'],
  degradedReasons: [],
  infoLabels: AUTH_CODE_LABEL,
  values: {
    ip_protocol: CONNECTION_VALUES.ip_protocol,
    dns_lookup_time_seconds: CONNECTION_VALUES.dns_lookup_time_seconds,
  },
  // One series per numeric OID of the check, named in its config.
  itemGauge: {
    metric: 'vakt_snmp_value',
    label: 'oid_name',
    help: "Value of a numeric OID (Integer, Counter, Gauge, TimeTicks, Counter64) in the last run's answer, by the name the check gives it.",
  },
  words: {
    en: words('not reporting its state', 'Not in the expected state', 'Does not report the value', 'en'),
    sv: words('rapporterar inte sitt tillstånd', 'Inte i förväntat tillstånd', 'Rapporterar inte värdet', 'sv'),
    da: words('rapporterer ikke sin tilstand', 'Ikke i den forventede tilstand', 'Rapporterer ikke værdien', 'da'),
    nb: words('rapporterer ikke sin tilstand', 'Ikke i forventet tilstand', 'Rapporterer ikke verdien', 'nb'),
    fi: words('ei ilmoita tilaansa', 'Ei odotetussa tilassa', 'Ei ilmoita arvoa', 'fi'),
  },
  example: `- name: fw1-ha
  title: Firewall member 1 (HA state)
  kind: snmp
  target: fw1-mgmt.region.example
  secrets: { fw_auth: { env: VAKT_FW_SNMP_AUTH }, fw_priv: { env: VAKT_FW_SNMP_PRIV } }
  snmp:
    version: 3
    user: vakt-monitor
    authProtocol: sha256
    authKey: fw_auth
    privProtocol: aes
    privKey: fw_priv
    oids:
      - { name: ha-state, oid: 1.3.6.1.4.1.99999.1.1.0, equals: active, values: { 1: active, 2: standby } }
      - { name: uplink-oper, oid: 1.3.6.1.2.1.2.2.1.8.3, equals: 1, values: { 1: up, 2: down } }`,
  load: () => import('./probe.js').then((m) => m.snmpProbe),
});
