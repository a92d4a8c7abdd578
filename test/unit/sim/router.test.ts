/** The simulator's HTTP dispatch: per-method tables, longest character prefix, 403 / 501 otherwise. */
import { describe, expect, it } from 'vitest';
import { type Handler, Router, requestPath } from '../../../sim/http/router.js';

const h = (): Handler => () => {};
const router = new Router()
  .add('GET', '/', h())
  .add('GET', '/export', h())
  .add('GET', '/export_raw_vdi', h())
  .add('GET', '/export_metadata', h())
  .add('PUT', '/import', h())
  .add('PUT', '/import_raw_vdi', h())
  .add('POST', '/', h())
  .add('POST', '/jsonrpc', h());

describe('Router.find', () => {
  it.each([
    ['GET', '/export_raw_vdi', '/export_raw_vdi'],
    ['GET', '/export_raw_vdi/', '/export_raw_vdi'],
    ['GET', '/export_raw_vdi.vhd', '/export_raw_vdi'],
    ['GET', '/export_metadata/x', '/export_metadata'],
    ['GET', '/exportfoo', '/export'],
    ['GET', '/export_raw', '/export'],
    ['GET', '/nothing', '/'],
    ['PUT', '/import_raw_vdi/', '/import_raw_vdi'],
    ['PUT', '/import_raw_vdi', '/import_raw_vdi'],
    ['PUT', '/importx', '/import'],
    ['POST', '/jsonrpc', '/jsonrpc'],
    ['POST', '/jsonrpc/', '/jsonrpc'],
    ['POST', '/RPC2', '/'],
    ['POST', '/json', '/'],
  ])('%s %s → %s', (method, path, expected) => {
    const r = router.find(method, path);
    expect(r.kind).toBe('handler');
    expect(r.kind === 'handler' && r.path).toBe(expected);
  });

  it('a method with handlers but no matching prefix is forbidden; a method with none is not implemented', () => {
    expect(router.find('PUT', '/export_raw_vdi').kind).toBe('forbidden');
    expect(router.find('PUT', '/').kind).toBe('forbidden');
    expect(router.find('DELETE', '/export_raw_vdi').kind).toBe('not-implemented');
  });

  it('matches by characters, not path segments, and on the decoded path', () => {
    expect(new Router().add('GET', '/a/b', h()).find('GET', '/a/bc').kind).toBe('handler');
    expect(requestPath('/export%5Fraw%5Fvdi/?vdi=x')).toBe('/export_raw_vdi/');
    expect(requestPath('/bad%zz?x')).toBe('/bad%zz');
    expect(requestPath(undefined)).toBe('/');
  });
});
