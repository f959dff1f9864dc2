// The fhir kind, declared once: everything vakt knows about it (probes/kit/kind.ts).
import { webTarget } from '../kit/target.js';
import { LOGIN_WORDS } from '../kit/words.js';
import { AUTH_CODE_LABEL, CONNECTION_VALUES, defineKind, NETWORK_REASONS } from '../kit/kind.js';
import { options, PHASES } from './options.js';

export default defineKind({
  name: 'fhir',
  summary:
    'A FHIR server serves clinical data: its CapabilityStatement (version, status, JSON), then optionally a read or a search with a bearer or SMART backend-services token.',
  target: { schema: webTarget, multiple: false },
  options,
  secretOptions: ['bearerToken', 'clientSecret'],
  phases: PHASES,
  reasons: [...NETWORK_REASONS, 'http_status', 'auth', 'body_too_large', 'fhir_version', 'fhir_capability', 'resource_not_found', 'expect_mismatch'],
  degradedReasons: ['cert_expiring'],
  infoLabels: {
    ...AUTH_CODE_LABEL,
    fhirIssue: {
      metric: 'vakt_fhir_issue_info',
      label: 'code',
      help: "Issue code (FHIR IssueType) of the OperationOutcome in the last run's error answer (value 1); other for a code outside the value set.",
    },
  },
  values: {
    ...CONNECTION_VALUES,
    http_status_code: { metric: 'probe_http_status_code', help: 'HTTP status of the final response of the last step that got one.' },
    fhir_search_total: { metric: 'vakt_fhir_search_total', help: "Matches the last run's search found (Bundle.total, or its matching entries)." },
  },
  // A FHIR server that fails is one that does not serve patient data; a refused token reads as
  // the login words (the token endpoint's OAuth errors are info.authCode).
  words: {
    en: { notAnswering: 'not serving patient data', refusals: LOGIN_WORDS.en.refusals ?? {} },
    sv: { notAnswering: 'lämnar inte ut patientdata', refusals: LOGIN_WORDS.sv.refusals ?? {} },
    da: { notAnswering: 'udleverer ikke patientdata', refusals: LOGIN_WORDS.da.refusals ?? {} },
    nb: { notAnswering: 'leverer ikke pasientdata', refusals: LOGIN_WORDS.nb.refusals ?? {} },
    fi: { notAnswering: 'ei välitä potilastietoja', refusals: LOGIN_WORDS.fi.refusals ?? {} },
  },
  example: `- name: fhir-patient-api
  title: Patient data API (FHIR)
  kind: fhir
  target: https://fhir.region.example/fhir/R4
  secrets: { fhir_client_secret: { env: VAKT_FHIR_CLIENT_SECRET } }
  fhir:
    fhirVersion: R4
    search: Patient?identifier=urn:oid:1.2.752.129.2.1.3.1|191212121212&_count=1
    expect: { minTotal: 1, maxTotal: 1 }
    clientId: vakt-probe
    clientSecret: fhir_client_secret
    scope: system/Patient.read`,
  load: () => import('./probe.js').then((m) => m.fhirProbe),
});
